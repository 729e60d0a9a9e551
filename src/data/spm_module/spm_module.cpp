// placeholder
extern "C" int sq_spm_abi_version() { return 1; }
