# The layer rule of c_src/ (CMakeLists.txt): a file may include headers of its own layer and of layers below it,
# never of a layer above. The libraries' link dependencies catch a call into a layer above; this catches what
# they cannot see, such as an include of a header-only part (an inline function, a template, a type).
#
#   cmake -DDPOOL_SOURCE_DIR=<dir> -P cmake/check_layers.cmake
#
# <dir> is c_src/ (ctest `layer_includes`) or the fixture cmake/layer_check_fixture/ (ctest
# `layer_includes_finds_wrong_way`). Layers, bottom up: util, protocol, transport, pool and api are the
# directories of those names; a file directly in <dir> is of the cnode layer, except main.cpp (the binary).
# An include "x" is resolved as the compiler does: next to the including file first, then in <dir> (the include
# directory of every layer); <x> only in <dir>. Includes that resolve to neither (the standard library, Boost,
# ei, ...) are not ours and are skipped; so is a header of a layer directory that does not exist (yet): a
# missing header fails the compile anyway, but "pool/x.hpp" is still counted as of the pool layer.
# Every wrong-way include is printed as "<file>: #include "<header>": ...", then the script fails.
cmake_minimum_required(VERSION 3.18)

set(layers util protocol transport pool api cnode main)
set(directory_layers util protocol transport pool api)

if(NOT DEFINED DPOOL_SOURCE_DIR OR NOT IS_DIRECTORY "${DPOOL_SOURCE_DIR}")
  message(FATAL_ERROR "usage: cmake -DDPOOL_SOURCE_DIR=<c_src directory> -P check_layers.cmake")
endif()
get_filename_component(root "${DPOOL_SOURCE_DIR}" REALPATH)
get_filename_component(root_parent "${root}" DIRECTORY) # file names are printed relative to it: c_src/...

# The layer of an existing file under ${root}, or "" when it is in a directory that is no layer.
function(layer_of path out)
  file(RELATIVE_PATH rel "${root}" "${path}")
  if(rel MATCHES "^([^/]+)/")
    if(CMAKE_MATCH_1 IN_LIST directory_layers)
      set(${out} "${CMAKE_MATCH_1}" PARENT_SCOPE)
    else()
      set(${out} "" PARENT_SCOPE)
    endif()
  elseif(rel STREQUAL "main.cpp")
    set(${out} main PARENT_SCOPE)
  else()
    set(${out} cnode PARENT_SCOPE)
  endif()
endfunction()

# True when `path` (absolute, normalized) is ${root} or below it.
function(inside_root path out)
  file(RELATIVE_PATH rel "${root}" "${path}")
  if(rel MATCHES "^\\.\\./" OR rel STREQUAL ".." OR IS_ABSOLUTE "${rel}")
    set(${out} FALSE PARENT_SCOPE)
  else()
    set(${out} TRUE PARENT_SCOPE)
  endif()
endfunction()

set(include_regex "^[ \t]*#[ \t]*include[ \t]*([\"<])([^\">]+)[\">]")
file(GLOB_RECURSE files LIST_DIRECTORIES false "${root}/*")
list(SORT files)
set(violations 0)
set(checked_files 0)
set(checked_includes 0)
foreach(file IN LISTS files)
  if(NOT file MATCHES "\\.(c|cc|cpp|cxx|h|hh|hpp|hxx|ipp|inl|tpp)$")
    continue()
  endif()
  file(RELATIVE_PATH shown "${root_parent}" "${file}")
  layer_of("${file}" file_layer)
  if(file_layer STREQUAL "")
    file(RELATIVE_PATH rel "${root}" "${file}")
    string(REGEX REPLACE "/.*" "" dir "${rel}")
    message(NOTICE "${shown}: '${dir}/' is no layer: add it to the layers of cmake/check_layers.cmake "
                   "and give it a library in CMakeLists.txt")
    math(EXPR violations "${violations} + 1")
    continue()
  endif()
  list(FIND layers "${file_layer}" file_level)
  math(EXPR checked_files "${checked_files} + 1")
  get_filename_component(file_dir "${file}" DIRECTORY)

  file(STRINGS "${file}" lines REGEX "${include_regex}")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "${include_regex}")
      continue() # the part after a ';' of a line that had one
    endif()
    set(quote "${CMAKE_MATCH_1}")
    set(header "${CMAKE_MATCH_2}")

    set(header_layer "")
    set(candidates "${root}/${header}")
    if(quote STREQUAL "\"")
      set(candidates "${file_dir}/${header}" "${root}/${header}")
    endif()
    foreach(candidate IN LISTS candidates)
      get_filename_component(candidate "${candidate}" ABSOLUTE)
      inside_root("${candidate}" inside)
      if(inside AND EXISTS "${candidate}" AND NOT IS_DIRECTORY "${candidate}")
        layer_of("${candidate}" header_layer)
        break()
      endif()
    endforeach()
    if(header_layer STREQUAL "" AND header MATCHES "^([^/]+)/")
      if(CMAKE_MATCH_1 IN_LIST directory_layers)
        set(header_layer "${CMAKE_MATCH_1}")
      endif()
    endif()
    if(header_layer STREQUAL "")
      continue() # not one of ours
    endif()

    math(EXPR checked_includes "${checked_includes} + 1")
    list(FIND layers "${header_layer}" header_level)
    if(header_level GREATER file_level)
      message(NOTICE "${shown}: #include ${quote}${header}${quote}: the ${file_layer} layer must not include "
                     "the ${header_layer} layer, which is above it")
      math(EXPR violations "${violations} + 1")
    endif()
  endforeach()
endforeach()

string(REPLACE ";" " <- " order "${layers}")
if(violations GREATER 0)
  message(FATAL_ERROR "${violations} wrong-way include(s) in ${root} (layers, bottom up: ${order})")
endif()
message(STATUS "${checked_files} files, ${checked_includes} includes of their own headers, "
               "none of a layer above (layers, bottom up: ${order})")
