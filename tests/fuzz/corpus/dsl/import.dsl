import "tiny.dsl";
import "nope.dsl";
