# Warnings for the project's own targets (never for generated ANTLR code).
function(twinq_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
  # g++ 12's flow analysis under -fsanitize=address reports uninitialized reads inside
  # std::variant's storage (engine/common/value.h's Rep, e.g. Value::Bool) that cannot happen;
  # the plain build keeps the warning, the sanitizer build every other one.
  if(TWINQ_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
endfunction()

# A project library: sources, include root at the repository top, warnings on.
function(twinq_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  twinq_warnings(${name})
endfunction()
