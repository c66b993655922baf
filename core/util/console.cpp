// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/util/console.h"

#include <iostream>
#include <string>

namespace mmlab {

void write_stderr_line(std::string_view line) {
  std::string text(line);
  text += '\n';
  std::cerr << text << std::flush;
}

}  // namespace mmlab
