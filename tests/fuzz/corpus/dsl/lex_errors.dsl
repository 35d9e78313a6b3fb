let s = "unterminated
let n = 123456789012345678901234567890;
/* open