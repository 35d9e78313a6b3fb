# embed_common.cmake — what the build-time embedding scripts share:
# dscc_c_bytes(FILE VAR) sets VAR to FILE's bytes as a C initializer list
# ("0x2f,0x2f,...", 24 a line) and its byte count in VAR_LEN;
# dscc_write_if_changed(OUT TEXT) writes TEXT to OUT only when it differs, so
# an unchanged input rebuilds nothing.
function(dscc_c_bytes file var)
  file(READ "${file}" hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR bytes "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x..,){24})" "\\1\n    " hex "${hex}")
  set(${var} "${hex}" PARENT_SCOPE)
  set(${var}_LEN "${bytes}" PARENT_SCOPE)
endfunction()

function(dscc_write_if_changed out text)
  set(old "")
  if(EXISTS "${out}")
    file(READ "${out}" old)
  endif()
  if(NOT old STREQUAL text)
    file(WRITE "${out}" "${text}")
  endif()
endfunction()
