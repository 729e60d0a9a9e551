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
# A PyPI wheel's libtorch_cuda.so finds NCCL, cuDNN, cuBLAS... in the sibling nvidia/*/lib
# wheels through its own $ORIGIN rpath at run time; the linker does not follow $ORIGIN, and
# would otherwise resolve libnccl.so.2 from the CUDA toolkit (an older NCCL: undefined
# ncclCommGrow... at link time). Point it at the wheels' copies.
if(TORCH_INSTALL_PREFIX)
  set(_sq_torch_libdir "${TORCH_INSTALL_PREFIX}/lib")
elseif(SQ_TORCH_ROOT)
  set(_sq_torch_libdir "${SQ_TORCH_ROOT}/lib")
endif()
if(_sq_torch_libdir)
  file(GLOB _sq_nvidia_libdirs LIST_DIRECTORIES true "${_sq_torch_libdir}/../../nvidia/*/lib")
  foreach(_d IN LISTS _sq_nvidia_libdirs)
    get_filename_component(_d "${_d}" REALPATH)
    target_link_options(sq_torch INTERFACE "LINKER:-rpath-link,${_d}")
  endforeach()
endif()
add_library(sq::torch ALIAS sq_torch)

# The language standard follows the libtorch headers: Debian's 1.13 builds as C++17; PyTorch
# wheels from 2.10 on refuse anything before C++20 (ATen/ATen.h: "C++20 or later ... is
# required"). The sources compile as either.
get_target_property(_sq_torch_inc sq_torch INTERFACE_INCLUDE_DIRECTORIES)
set(_sq_aten_h "")
foreach(_d IN LISTS _sq_torch_inc TORCH_INCLUDE_DIRS)
  if(NOT _sq_aten_h AND EXISTS "${_d}/ATen/ATen.h")
    set(_sq_aten_h "${_d}/ATen/ATen.h")
  endif()
endforeach()
if(_sq_aten_h)
  file(STRINGS "${_sq_aten_h}" _sq_cxx20 REGEX "__cplusplus < 202002L")
  if(_sq_cxx20)
    set(CMAKE_CXX_STANDARD 20)
    message(STATUS "sliderquant: ${_sq_aten_h} requires C++20: building as C++20")
  endif()
else()
  message(STATUS "sliderquant: ATen/ATen.h not found in the torch include directories; keeping C++${CMAKE_CXX_STANDARD}")
endif()
