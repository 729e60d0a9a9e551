# Provides the imported target sq::torch.
# Default: find_package(Torch) (Debian's libtorch-dev, or a wheel's cmake prefix path).
# SQ_TORCH_MANUAL=ON links a PyTorch wheel's torch/lib directly: a CUDA wheel's TorchConfig
# insists on a CUDA toolkit at configure time even though the wheel ships every runtime .so.
option(SQ_TORCH_MANUAL "link libtorch from SQ_TORCH_ROOT without TorchConfig" OFF)
set(SQ_TORCH_ROOT "" CACHE PATH "torch package dir (…/site-packages/torch) for SQ_TORCH_MANUAL")

if(NOT SQ_TORCH_MANUAL)
  find_package(Torch REQUIRED)
  add_library(sq_torch INTERFACE)
  target_link_libraries(sq_torch INTERFACE ${TORCH_LIBRARIES})
  # TORCH_CXX_FLAGS carries -D_GLIBCXX_USE_CXX11_ABI=…; never hard-code it.
  separate_arguments(_sq_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(sq_torch INTERFACE ${_sq_torch_flags})
  if(TORCH_INCLUDE_DIRS)
    target_include_directories(sq_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  endif()
  if(TARGET c10_cuda)
    target_link_libraries(sq_torch INTERFACE c10_cuda)
    target_compile_definitions(sq_torch INTERFACE SQ_HAVE_CUDA_LIBS)
  endif()
else()
  if(NOT SQ_TORCH_ROOT)
    message(FATAL_ERROR "SQ_TORCH_MANUAL=ON needs -DSQ_TORCH_ROOT=<site-packages/torch>")
  endif()
  set(_lib ${SQ_TORCH_ROOT}/lib)
  add_library(sq_torch INTERFACE)
  target_include_directories(sq_torch SYSTEM INTERFACE
    ${SQ_TORCH_ROOT}/include ${SQ_TORCH_ROOT}/include/torch/csrc/api/include)
  set(_libs ${_lib}/libtorch_cpu.so ${_lib}/libtorch.so ${_lib}/libc10.so)
  if(EXISTS ${_lib}/libtorch_cuda.so)
    # libtorch_cuda registers its kernels in static initialisers: keep it even if "unused".
    target_link_options(sq_torch INTERFACE "LINKER:--no-as-needed")
    list(APPEND _libs ${_lib}/libtorch_cuda.so ${_lib}/libc10_cuda.so)
    target_compile_definitions(sq_torch INTERFACE USE_CUDA SQ_HAVE_CUDA_LIBS)
  endif()
  target_link_libraries(sq_torch INTERFACE ${_libs})
  target_link_options(sq_torch INTERFACE "LINKER:-rpath,${_lib}")
  execute_process(COMMAND sh -c "nm -D ${_lib}/libc10.so | grep -c __cxx11"
                  OUTPUT_VARIABLE _cxx11 OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_cxx11 GREATER 0)
    target_compile_definitions(sq_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  else()
    target_compile_definitions(sq_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=0)
  endif()
endif()
add_library(sq::torch ALIAS sq_torch)
