# Evaluated by ctest (the tests folder's TEST_INCLUDE_FILES, tests/CMakeLists.txt): one ctest
# entry per GoogleTest suite of the test binary ("ctest -R RatioCli"), not one per test.
# Every process of the binary pays about 0.5 s of start-up (libtorch's static initialisers;
# the dynamic loader is 0.02 s of it) and about 1.2 s under ASan + UBSan: 297 tests in 115
# suites, so one process per suite spares 182 start-ups per run. A single test still runs as
#   build/tests/sq_tests --gtest_filter='Suite.Name'
# Set by the generated wrapper: SQ_TESTS_EXE (the binary).
execute_process(COMMAND "${SQ_TESTS_EXE}" --gtest_list_tests
  OUTPUT_VARIABLE sq_list ERROR_VARIABLE sq_err RESULT_VARIABLE sq_rc)
if(NOT sq_rc EQUAL 0)
  # A missing or broken binary is a failing entry, never an empty suite list.
  message(WARNING "tests: '${SQ_TESTS_EXE} --gtest_list_tests' failed (${sq_rc}): ${sq_err}")
  add_test(sq_tests.list "${SQ_TESTS_EXE}" --gtest_list_tests)
  return()
endif()
string(REPLACE "\n" ";" sq_lines "${sq_list}")
set(sq_suites "")
foreach(sq_line IN LISTS sq_lines)
  # "Suite." at column 0 (tests are indented); parameterised suites look like "Prefix/Suite/0."
  if(sq_line MATCHES "^([A-Za-z_][A-Za-z0-9_/]*)\\.")
    list(APPEND sq_suites "${CMAKE_MATCH_1}")
  endif()
endforeach()
if(NOT sq_suites)
  message(FATAL_ERROR "tests: ${SQ_TESTS_EXE} --gtest_list_tests lists no test suite:\n${sq_list}")
endif()
foreach(sq_suite IN LISTS sq_suites)
  add_test("${sq_suite}" "${SQ_TESTS_EXE}" "--gtest_filter=${sq_suite}.*")
  set_tests_properties("${sq_suite}" PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1")
endforeach()
