// An import cycle is cut (each file is read once), so the only error is the
// real one below.
import "import_cycle_b.inc";
dim B;
input x: f32[B, 4];
// expected-error@+1 {{undefined name 'not_defined_anywhere'}}
output y = x * not_defined_anywhere;
