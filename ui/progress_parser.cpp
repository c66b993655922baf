// SPDX-License-Identifier: GPL-3.0-or-later
#include "ui/progress_parser.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace mmlab::ui {

namespace {

using nlohmann::json;

// Reads an optional integer key; false when it is present with a non-integer type.
bool read_int(const json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_number_integer() || it->is_number_unsigned()) {
    out = it->get<int64_t>();
    return true;
  }
  if (it->is_number_float()) {  // 4096.0 from a writer that prints every number as double
    double v = it->get<double>();
    if (std::isfinite(v) && v == std::floor(v)) {
      out = static_cast<int64_t>(v);
      return true;
    }
  }
  return false;
}

bool read_double(const json& j, const char* key, double& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_number()) return false;
  out = it->get<double>();
  return true;
}

bool read_string(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

}  // namespace

bool ProgressParser::reject(std::string why) {
  ++malformed_;
  last_error_ = std::move(why);
  return false;
}

bool ProgressParser::parse_line(std::string_view line, ProgressEvent& out) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.remove_suffix(1);
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  if (line.empty()) return false;
  if (line.size() > kMaxLine) return reject("line longer than 1 MiB");

  // allow_exceptions=false: malformed JSON yields a discarded value instead of a throw.
  json j = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return reject("not JSON: " + std::string(line.substr(0, 80)));
  if (!j.is_object()) return reject("not a JSON object");
  auto ev = j.find("event");
  if (ev == j.end() || !ev->is_string()) return reject("no \"event\" string");

  ProgressEvent e;
  const std::string& name = ev->get_ref<const std::string&>();
  if (name == "status") {
    e.kind = EventKind::kStatus;
  } else if (name == "step") {
    e.kind = EventKind::kStep;
  } else if (name == "eval") {
    e.kind = EventKind::kEval;
  } else if (name == "checkpoint") {
    e.kind = EventKind::kCheckpoint;
  } else if (name == "log") {
    e.kind = EventKind::kLog;
  } else {
    ++ignored_;  // a newer trainer's event: not an error, just not ours to interpret
    return false;
  }
  if (!j.contains("run_id")) return reject("\"" + name + "\" event without run_id");
  if (!read_int(j, "run_id", e.run_id)) return reject("run_id is not an integer");
  if (!read_double(j, "wall", e.wall) || !read_double(j, "fraction", e.fraction))
    return reject("wall/fraction is not a number");
  if (!read_int(j, "step", e.step) || !read_int(j, "tokens", e.tokens) ||
      !read_int(j, "total_steps", e.total_steps) || !read_int(j, "bytes", e.bytes))
    return reject("step/tokens/total_steps/bytes is not an integer");
  if (!read_string(j, "status", e.status) || !read_string(j, "message", e.message) ||
      !read_string(j, "name", e.name) || !read_string(j, "db", e.db) ||
      !read_string(j, "path", e.path) || !read_string(j, "level", e.level))
    return reject("a text field is not a string");
  if (e.kind == EventKind::kStatus && e.status.empty())
    return reject("status event without status");
  if ((e.kind == EventKind::kStep || e.kind == EventKind::kEval) && e.step < 0)
    return reject("step event without step");

  auto m = j.find("metrics");
  if (m != j.end() && !m->is_null()) {
    if (!m->is_object()) return reject("metrics is not an object");
    e.metrics.reserve(m->size());
    for (auto it = m->begin(); it != m->end(); ++it) {
      if (it->is_number()) {
        e.metrics.emplace_back(it.key(), it->get<double>());
      } else if (it->is_null()) {
        e.metrics.emplace_back(it.key(), std::numeric_limits<double>::quiet_NaN());
      }
      // Any other type is skipped alone: the other metrics of the step are still good.
    }
  }
  out = std::move(e);
  ++events_;
  return true;
}

std::vector<ProgressEvent> ProgressParser::feed(std::string_view chunk) {
  std::vector<ProgressEvent> out;
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    std::string_view piece = chunk.substr(0, nl);
    if (overflow_) {
      if (nl == std::string_view::npos) return out;  // still inside the over-long line
      overflow_ = false;
    } else if (pending_.size() + piece.size() > kMaxLine) {
      pending_.clear();
      reject("line longer than 1 MiB");
      overflow_ = nl == std::string_view::npos;
    } else if (nl == std::string_view::npos) {
      pending_.append(piece);
      return out;
    } else {
      ProgressEvent e;
      bool ok;
      if (pending_.empty()) {
        ok = parse_line(piece, e);
      } else {
        pending_.append(piece);
        ok = parse_line(pending_, e);
        pending_.clear();
      }
      if (ok) out.push_back(std::move(e));
    }
    if (nl == std::string_view::npos) break;
    chunk.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<ProgressEvent> ProgressParser::finish() {
  std::vector<ProgressEvent> out;
  overflow_ = false;
  if (pending_.empty()) return out;
  ProgressEvent e;
  if (parse_line(pending_, e)) out.push_back(std::move(e));
  pending_.clear();
  return out;
}

}  // namespace mmlab::ui
