// A zero extent: ops divide by extents (rows = elements / width), so no
// value may have an empty axis.
dim B, S;
input tokens: i32[B, S];
// expected-error@+1 {{weight: f32[0,4] has an empty axis 0; every extent must be at least 1}}
weight table: f32[0, 4] = "table";
// expected-error@+1 {{input: f32[B,S,0] has an empty axis 2}}
input z: f32[B, S, 0];
