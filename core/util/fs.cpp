// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/util/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/util/error.h"
#include "core/util/file_writer.h"

namespace mmlab {
namespace fs = std::filesystem;

void write_file_atomically(const fs::path& path, std::string_view bytes,
                           const WriteErrorText& text) {
  FileWriter out(path, text);
  out.write(bytes);
  out.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) {
      throw UserError("The file " + path.string() + " does not exist.",
                      "Check the path (relative paths are taken from the current directory).");
    }
    throw UserError("The file " + path.string() + " cannot be read.", "Check its permissions.");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path data_home() {
  fs::path base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = fs::path(home) / ".local" / "share";
  } else {
    base = fs::temp_directory_path();
  }
  fs::path dir = base / "mmlab";
  std::error_code ec;
  fs::create_directories(dir, ec);
  return dir;
}

fs::path default_db_path() {
  return data_home() / "results.sqlite";
}

}  // namespace mmlab
