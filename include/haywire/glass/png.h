// PNG output of rendered maps (libpng).
#pragma once

#include <string>

#include "haywire/base/error.h"
#include "haywire/glass/render.h"

namespace haywire::glass {

struct PngOptions {
  // zlib level 1 and no row filter: a 4096 x 4096 heat map is mostly runs of background, which
  // level 1 already compresses well, and stronger settings cost several times the CPU.
  int compression_level = 1;
};

// Writes `image` (RGBA8) to `path` atomically: into "<path>.tmp.<pid>" in the same directory,
// then rename(), so a viewer re-reading the file every interval never sees a partial image.
// PermissionDenied / FileNotFound (missing directory) / IoError on failure; no temp file is
// left behind. InvalidArgument for an empty image or one whose buffer size does not match.
Result<void> write_png(const std::string& path, const Image& image, const PngOptions& options = {});

// Reads an 8-bit RGBA or RGB PNG (RGB gets alpha 255). For tests and tools; ParseError for
// anything else.
Result<Image> read_png(const std::string& path);

}  // namespace haywire::glass
