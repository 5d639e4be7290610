// `ckpt show FILE|DIR`: images as JSON, the first tool for a bug report.
#pragma once

#include <string>

#include "base/result.h"

namespace ckpt {

// Prints one image file, or every image of a directory, to stdout.
Status Show(const std::string& path);

}  // namespace ckpt
