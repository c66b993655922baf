// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/util/error.h"
#include "core/util/file_writer.h"
#include "core/util/fs.h"

// Tensor bytes go to and from disk as they lie in memory; the format is little-endian.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cpp assumes a little-endian host"
#endif

namespace mmlab {
namespace fs = std::filesystem;

namespace {

// The header is read whole into memory; the reference implementation refuses headers above this
// size too, and it stops a garbage length from asking for terabytes.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeName {
  torch::ScalarType dtype;
  const char* name;
};

// The dtypes both LibTorch 1.13 and 2.x have. (The format also knows U16/U32/U64, F8_*, which
// LibTorch 1.13 cannot represent.)
constexpr DtypeName kDtypes[] = {
    {torch::kFloat64, "F64"},   {torch::kFloat32, "F32"}, {torch::kFloat16, "F16"},
    {torch::kBFloat16, "BF16"}, {torch::kInt64, "I64"},   {torch::kInt32, "I32"},
    {torch::kInt16, "I16"},     {torch::kInt8, "I8"},     {torch::kUInt8, "U8"},
    {torch::kBool, "BOOL"},
};

bool dtype_from_name(const std::string& name, torch::ScalarType* dtype) {
  for (const auto& d : kDtypes) {
    if (name == d.name) {
      *dtype = d.dtype;
      return true;
    }
  }
  return false;
}

std::string in_quotes(const std::string& s) {
  return "\"" + s + "\"";
}

// A file descriptor opened for reading, closed with its owner.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A tensor as it will be written: CPU, contiguous, detached; nothing is copied when the input
// already is all of that.
torch::Tensor prepared(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU).contiguous();
}

std::uint64_t checked_nbytes(const std::vector<std::int64_t>& shape, std::size_t item_size,
                             bool* overflow) {
  std::uint64_t n = item_size;
  *overflow = false;
  for (std::int64_t d : shape) {
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) *overflow = true;
  }
  return n;
}

// Reads exactly `size` bytes at `offset`; a short read means the file shrank or is truncated.
void read_exactly(int fd, std::uint64_t offset, void* dst, std::uint64_t size,
                  const fs::path& path) {
  char* p = static_cast<char*>(dst);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw UserError("The safetensors file " + path.string() + " could not be read at byte " +
                          std::to_string(offset) + " (" +
                          (n < 0 ? std::strerror(errno) : "unexpected end of file") + ").",
                      "Re-create or re-download it; it may be truncated or on a failing disk.");
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::uint64_t>(n);
  }
}

struct Entry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::size_t order = 0;  // position in the header, to keep ties (empty tensors) stable
};

}  // namespace

std::string safetensors_dtype_name(torch::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  throw UserError(std::string("The safetensors format cannot hold tensors of dtype ") +
                      c10::toString(dtype) + ".",
                  "Convert the tensor to one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL first.");
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& nt) { return nt.first == name; });
}

const torch::Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& nt : tensors) {
    if (nt.first == name) return nt.second;
  }
  throw UserError(
      "The safetensors file " + path.string() + " has no tensor " + in_quotes(name) + ".",
      "Check that the file was written by the same model (and version) that reads it.");
}

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = " while writing " + path.string();
  // Header first: it needs every offset, which needs only shapes and dtypes, not the data.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  // Python's writer omits an empty "__metadata__"; doing the same keeps files byte-comparable.
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> seen;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == kMetadataKey) {
      throw UserError("The tensor name " + in_quotes(name) + " is not allowed" + where + ".",
                      "Tensor names must be non-empty and not \"__metadata__\".");
    }
    if (!seen.insert(name).second) {
      throw UserError("The tensor " + in_quotes(name) + " is given twice" + where + ".",
                      "Give every tensor a unique name.");
    }
    if (!t.defined() || t.layout() != torch::kStrided) {
      throw UserError(
          "The tensor " + in_quotes(name) + " is undefined or not a dense tensor" + where + ".",
          "Only dense (strided) tensors can be saved.");
    }
    std::string dtype_name;
    try {
      dtype_name = safetensors_dtype_name(t.scalar_type());
    } catch (const UserError& e) {
      throw UserError("The tensor " + in_quotes(name) + " has dtype " +
                          c10::toString(t.scalar_type()) + ", which safetensors cannot hold" +
                          where + ".",
                      e.hint());
    }
    const std::uint64_t nbytes =
        static_cast<std::uint64_t>(t.numel()) * static_cast<std::uint64_t>(t.element_size());
    nlohmann::ordered_json entry;
    entry["dtype"] = dtype_name;
    entry["shape"] = t.sizes().vec();
    entry["data_offsets"] = {offset, offset + nbytes};
    header[name] = std::move(entry);
    offset += nbytes;
  }

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception&) {
    // dump() refuses strings that are not valid UTF-8, which the format requires.
    throw UserError("A tensor name or metadata entry is not valid UTF-8" + where + ".",
                    "Use UTF-8 text for tensor names and metadata.");
  }
  // Padding to a multiple of 8 puts the data section at an 8-byte boundary, so a reader that maps
  // the file can view every tensor in place (the Python writer pads the same way).
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::uint64_t header_len = header_text.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(header_len >> (8 * i));

  FileWriter out(path);
  out.write(len_bytes, sizeof len_bytes);
  out.write(header_text);
  for (const auto& nt : tensors) {
    torch::Tensor t = prepared(nt.second);  // one tensor's copy at a time, at most
    if (t.numel() == 0) continue;           // data_ptr() of an empty tensor may be null
    out.write(t.data_ptr(), t.nbytes());
  }
  out.commit();
}

SafetensorsFile load_safetensors(const fs::path& path) {
  const std::string file = "The safetensors file " + path.string();
  const std::string rewrite = "Re-create it (or re-download it); the file is damaged.";
  // POSIX calls rather than std::filesystem: the LibTorch 2.x wheels export a statically linked
  // copy of libstdc++'s std::filesystem that can shadow the system's (pytorch issue #133437).
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      throw UserError(file + " does not exist.",
                      "Check the path (relative paths are taken from the current directory).");
    }
    throw UserError(file + " cannot be opened: " + std::strerror(errno) + ".",
                    "Check its permissions.");
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw UserError(file + " is not a regular file.", "Give the path of a .safetensors file.");
  }
  const std::uint64_t file_size = static_cast<std::uint64_t>(st.st_size);

  if (file_size < 8) {
    throw UserError(file + " is truncated: it has " + std::to_string(file_size) +
                        " bytes, fewer than the 8 of its header length.",
                    rewrite);
  }
  unsigned char len_bytes[8];
  read_exactly(fd.get(), 0, len_bytes, 8, path);
  std::uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<std::uint64_t>(len_bytes[i]) << (8 * i);
  if (header_len > file_size - 8) {
    throw UserError(file + " is truncated or not a safetensors file: its header length (" +
                        std::to_string(header_len) + " bytes) runs past the end of the file (" +
                        std::to_string(file_size) + " bytes).",
                    rewrite);
  }
  if (header_len > kMaxHeaderBytes) {
    throw UserError(file + " has a header of " + std::to_string(header_len) +
                        " bytes, more than the format's limit of " +
                        std::to_string(kMaxHeaderBytes) + ".",
                    "It is probably not a safetensors file.");
  }
  std::string header_text(header_len, '\0');
  read_exactly(fd.get(), 8, header_text.data(), header_len, path);

  // nlohmann keeps the last of two equal keys silently; a callback sees every key, so a duplicate
  // tensor name (which would hide a tensor) is caught.
  std::set<std::string> top_keys;
  std::string duplicate;
  auto on_event = [&](int depth, nlohmann::ordered_json::parse_event_t event,
                      nlohmann::ordered_json& parsed) {
    if (event == nlohmann::ordered_json::parse_event_t::key && depth == 1 &&
        !top_keys.insert(parsed.get<std::string>()).second && duplicate.empty()) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(header_text, on_event);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(file + " has a malformed JSON header (" + e.what() + ").", rewrite);
  }
  if (!header.is_object())
    throw UserError(file + " has a header that is not a JSON object.", rewrite);
  if (!duplicate.empty()) {
    throw UserError(file + " names the tensor " + in_quotes(duplicate) + " twice in its header.",
                    rewrite);
  }

  SafetensorsFile result;
  result.path = path;
  std::vector<Entry> entries;
  std::size_t order = 0;
  // ordered_json keeps the header's key order, which breaks ties between empty tensors (they share
  // an offset) so that they too come back in the order they were written.
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (!value.is_object()) {
        throw UserError(file + " has a \"__metadata__\" that is not a JSON object.", rewrite);
      }
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          throw UserError(
              file + " has the metadata entry " + in_quotes(mkey) + " whose value is not a string.",
              "Safetensors metadata maps strings to strings; re-create the file.");
        }
        result.metadata[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    const std::string what = file + " has a bad header entry for tensor " + in_quotes(key) + ": ";
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets")) {
      throw UserError(what + "it needs \"dtype\", \"shape\" and \"data_offsets\".", rewrite);
    }
    Entry entry;
    entry.name = key;
    entry.order = order++;
    const auto& dtype = value["dtype"];
    if (!dtype.is_string() || !dtype_from_name(dtype.get<std::string>(), &entry.dtype)) {
      throw UserError(what + "the dtype " + dtype.dump() + " is unknown or not supported.",
                      "Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.");
    }
    const auto& shape = value["shape"];
    if (!shape.is_array()) throw UserError(what + "\"shape\" is not an array.", rewrite);
    for (const auto& d : shape) {
      // A negative or fractional size is not unsigned; one beyond int64 cannot be a real tensor.
      if (!d.is_number_unsigned() ||
          d.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
        throw UserError(what + "the shape " + shape.dump() + " is not a list of sizes.", rewrite);
      }
      entry.shape.push_back(d.get<std::int64_t>());
    }
    const auto& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw UserError(what + "\"data_offsets\" " + offsets.dump() + " is not [begin, end].",
                      rewrite);
    }
    entry.begin = offsets[0].get<std::uint64_t>();
    entry.end = offsets[1].get<std::uint64_t>();
    const std::uint64_t data_size = file_size - 8 - header_len;
    if (entry.begin > entry.end || entry.end > data_size) {
      throw UserError(what + "its data offsets " + offsets.dump() +
                          " lie outside the data section of " + std::to_string(data_size) +
                          " bytes (the file may be truncated).",
                      rewrite);
    }
    bool overflow = false;
    const std::uint64_t expected =
        checked_nbytes(entry.shape, c10::elementSize(entry.dtype), &overflow);
    if (overflow || entry.end - entry.begin != expected) {
      throw UserError(what + "its data offsets " + offsets.dump() + " span " +
                          std::to_string(entry.end - entry.begin) + " bytes, but shape " +
                          shape.dump() + " of " + dtype.get<std::string>() + " needs " +
                          (overflow ? std::string("more than 2^64") : std::to_string(expected)) +
                          " bytes.",
                      rewrite);
    }
    entries.push_back(std::move(entry));
  }

  // Like the reference implementation, the tensors must tile the data section exactly: no overlap
  // (two tensors sharing bytes), no hole and nothing after the last one. A file we accept is then
  // one Python's safetensors accepts too.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin
           : a.end != b.end   ? a.end < b.end
                              : a.order < b.order;
  });
  std::uint64_t expected_begin = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < expected_begin) {
      throw UserError(file + " has overlapping data for tensors " + in_quotes(previous->name) +
                          " and " + in_quotes(e.name) + ".",
                      rewrite);
    }
    if (e.begin > expected_begin) {
      throw UserError(file + " has " + std::to_string(e.begin - expected_begin) +
                          " bytes that belong to no tensor before tensor " + in_quotes(e.name) +
                          ".",
                      rewrite);
    }
    expected_begin = e.end;
    previous = &e;
  }
  const std::uint64_t data_size = file_size - 8 - header_len;
  if (expected_begin != data_size) {
    throw UserError(file + " has " + std::to_string(data_size - expected_begin) +
                        " bytes after its last tensor that belong to no tensor.",
                    rewrite);
  }

  const std::uint64_t data_start = 8 + header_len;
  result.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    // Each tensor gets its own aligned allocation: nothing keeps the file or a big buffer alive.
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype));
    read_exactly(fd.get(), data_start + e.begin, t.data_ptr(), e.end - e.begin, path);
    result.tensors.emplace_back(e.name, std::move(t));
  }
  return result;
}

}  // namespace mmlab
