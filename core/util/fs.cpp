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

namespace {

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw_write_error(path, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw_write_error(path, err);
}

}  // namespace

void write_file_atomically(const fs::path& path,
                           const std::function<void(const fs::path&)>& write) {
  std::random_device rd;
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  try {
    write(tmp);
    fsync_path(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw_write_error(path, ec.value());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  // Make the rename itself durable.
  fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  write_file_atomically(path, [&](const fs::path& tmp) {
    FileWriter out(tmp, path);
    out.write(bytes);
    out.close();
  });
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
