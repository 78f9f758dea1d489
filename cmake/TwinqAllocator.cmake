# twinq_use_jemalloc(TARGET): links an executable with jemalloc (Debian's libjemalloc-dev), which
# then serves every malloc of the process. The index allocates many small, differently-lived
# blocks (parsed twins, documents, column versions); glibc malloc fragments under that pattern and
# spends its time coalescing and returning pages (bench/BENCHLOG.md, "the index ..." sections:
# single-twin patches 1.7x faster, bulk patches 1.5x on a 10k fleet). Libraries never pick an
# allocator: only the twinq command and the benchmarks call this.
#
# -DTWINQ_JEMALLOC=OFF builds without it. Sanitizer builds (TWINQ_SANITIZE, TWINQ_LIBFUZZER, or
# -fsanitize in CMAKE_CXX_FLAGS) never use it: the sanitizers bring their own allocator.
option(TWINQ_JEMALLOC "Link the twinq command and the benchmarks with jemalloc" ON)

set(_twinq_jemalloc_lib "")
if(TWINQ_JEMALLOC AND NOT TWINQ_SANITIZE AND NOT TWINQ_LIBFUZZER
   AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  find_library(TWINQ_JEMALLOC_LIBRARY NAMES jemalloc)
  if(NOT TWINQ_JEMALLOC_LIBRARY)
    message(FATAL_ERROR "jemalloc not found: run scripts/setup.sh (libjemalloc-dev), "
                        "or configure with -DTWINQ_JEMALLOC=OFF")
  endif()
  set(_twinq_jemalloc_lib ${TWINQ_JEMALLOC_LIBRARY})
  message(STATUS "twinq: executables use jemalloc (${TWINQ_JEMALLOC_LIBRARY})")
endif()

# The options jemalloc starts with are compiled into each executable (cmake/jemalloc_conf.cc).
function(twinq_use_jemalloc target)
  if(_twinq_jemalloc_lib)
    target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/jemalloc_conf.cc)
    target_link_libraries(${target} PRIVATE ${_twinq_jemalloc_lib})
  endif()
endfunction()
