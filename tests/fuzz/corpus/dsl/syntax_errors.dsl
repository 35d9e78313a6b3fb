let a = ;
fn f( { }
output = 3;
