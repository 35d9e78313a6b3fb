// expected-error@+1 {{cannot import "layers/mla.dsl": no such file}}
import "layers/mla.dsl";
