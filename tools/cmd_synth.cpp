// tools/cmd_synth: `sliderquant synth OUT --preset P`: seeded random checkpoints in the HF
// layout, written to a temporary directory and renamed into place when complete.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <filesystem>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/model/synthetic.h"

namespace sq::cli {

int cmd_synth(const SynthArgs& a, const CommonArgs& common) {
  apply_common(common);
  ModelConfig c = synthetic_config(a.family, a.preset);
  if (a.layers > 0) c.num_layers = a.layers;
  SyntheticOptions o;
  o.seed = a.seed;
  o.dtype = parse_dtype(a.dtype);
  o.max_shard_bytes = uint64_t(a.shard_size_mb) << 20;
  o.tokenizer_from = a.tokenizer;
  if (path_exists(a.out) && !a.force)
    throw UsageError(a.out + " already exists (use --force to replace it)");
  if (!path_exists(a.out)) check_writable_file(a.out, "output");  // an existing OUT is replaced (--force)
  remove_stale_temps(a.out);
  const std::string tmp = temp_sibling(a.out);
  SQ_CHECK(::mkdir(tmp.c_str(), 0755) == 0, "cannot create " << tmp);
  SQ_INFO("writing a " << c.architecture << " (" << a.preset << ", " << c.param_count() << " parameters, seed "
                       << a.seed << ") to " << a.out);
  try {
    write_synthetic_model(tmp, c, o);
  } catch (...) {
    remove_path(tmp);  // best effort: the error being thrown matters more
    throw;
  }
  try {
    replace_path(tmp, a.out);
  } catch (...) {
    remove_path(tmp);
    throw;
  }
  return 0;
}

}  // namespace sq::cli
