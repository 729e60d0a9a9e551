# Header-only and small dependencies: the system package first (Debian), else a prefix
# given with CMAKE_PREFIX_PATH (the GPU machine unpacks Debian's .debs into one).
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 2.1 CONFIG QUIET)
if(NOT CLI11_FOUND)
  find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
  add_library(CLI11 INTERFACE)
  target_include_directories(CLI11 SYSTEM INTERFACE ${CLI11_INCLUDE_DIR})
  add_library(CLI11::CLI11 ALIAS CLI11)
endif()
# Eigen: the host-side matrices of quant/ratio_iqp (public: its header takes Eigen matrices).
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(LibLZMA REQUIRED)
# Byte-level BPE tokenizer: PCRE2 (pre-tokenizer regexes, \p{L} with UCP) and utf8proc (NFC).
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
find_package(BZip2 REQUIRED)  # HellaSwag's .bz2 task file (Debian: libbz2-dev)
