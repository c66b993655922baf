// SPDX-License-Identifier: GPL-3.0-or-later
#include "core/remote/host.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/util/error.h"
#include "core/util/fs.h"

namespace mmlab::remote {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr char kForms[] =
    "Write it as `ssh://user@host[:port]` or `slurm://user@login-host[:port]`.";

Host local_host() {
  Host h;
  h.name = "local";
  return h;
}

Host from_json(const json& j, const fs::path& file) {
  Host h;
  try {
    h.name = j.at("name").get<std::string>();
    parse_target(j.at("target").get<std::string>(), h);
    h.mmlab = j.value("mmlab", std::string("mmlab"));
    h.dir = j.value("dir", std::string());
    h.ssh_config = j.value("ssh_config", std::string());
    h.ssh_options = j.value("ssh_options", std::vector<std::string>{});
    h.partition = j.value("partition", std::string());
    h.account = j.value("account", std::string());
    h.gpus = j.value("gpus", 0);
    h.tasks = j.value("tasks", 0);
    h.time_limit = j.value("time_limit", std::string());
    h.sbatch_lines = j.value("sbatch_lines", std::vector<std::string>{});
  } catch (const json::exception&) {
    throw UserError("The hosts file " + file.string() + " has an entry without a valid name, " +
                        "target or field.",
                    "Fix or remove it (`mmlab hosts remove NAME`), or delete the file.");
  }
  return h;
}

}  // namespace

json to_json(const Host& h) {
  json j = {{"name", h.name}, {"target", h.target()}, {"mmlab", h.mmlab}, {"dir", h.dir}};
  if (!h.ssh_config.empty()) j["ssh_config"] = h.ssh_config;
  if (!h.ssh_options.empty()) j["ssh_options"] = h.ssh_options;
  if (h.kind == HostKind::kSlurm) {
    j["partition"] = h.partition;
    j["account"] = h.account;
    j["gpus"] = h.gpus;
    j["tasks"] = h.tasks;
    j["time_limit"] = h.time_limit;
    j["sbatch_lines"] = h.sbatch_lines;
  }
  return j;
}

std::string Host::target() const {
  if (kind == HostKind::kLocal) return "local";
  std::string url = kind == HostKind::kSsh ? "ssh://" : "slurm://";
  url += destination();
  if (port > 0) url += ":" + std::to_string(port);
  return url;
}

int Host::ranks_per_run() const {
  return std::max(1, gpus > 0 ? gpus : tasks);
}

std::string Host::destination() const {
  return user.empty() ? address : user + "@" + address;
}

void parse_target(const std::string& url, Host& host) {
  if (url == "local") {
    host.kind = HostKind::kLocal;
    return;
  }
  static const std::regex form(
      R"(^(ssh|slurm)://(?:([A-Za-z0-9._-]+)@)?([A-Za-z0-9._-]+)(?::([0-9]{1,5}))?$)");
  std::smatch m;
  if (!std::regex_match(url, m, form)) {
    throw UserError("The target `" + url + "` is not a host address mmlab understands.", kForms);
  }
  host.kind = m[1] == "ssh" ? HostKind::kSsh : HostKind::kSlurm;
  host.user = m[2];
  host.address = m[3];
  host.port = m[4].matched ? std::stoi(m[4]) : 0;
  if (host.port > 65535) {
    throw UserError("The port in `" + url + "` is larger than 65535.", kForms);
  }
}

fs::path default_hosts_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg) {
    return fs::path(xdg) / "mmlab" / "hosts.json";
  }
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".config" / "mmlab" / "hosts.json";
}

HostList HostList::load(const fs::path& path) {
  HostList list;
  list.path_ = path;
  list.hosts_.push_back(local_host());
  std::error_code ec;
  if (!fs::exists(path, ec)) return list;
  json doc;
  try {
    doc = json::parse(read_file(path));
  } catch (const json::exception&) {
    throw UserError("The hosts file " + path.string() + " is not valid JSON.",
                    "Fix it, or delete it and add the hosts again with `mmlab hosts add`.");
  }
  if (!doc.is_object() || !doc.contains("hosts") || !doc["hosts"].is_array()) {
    throw UserError("The hosts file " + path.string() + " has no \"hosts\" list.",
                    "Fix it, or delete it and add the hosts again with `mmlab hosts add`.");
  }
  for (const auto& j : doc["hosts"]) list.hosts_.push_back(from_json(j, path));
  return list;
}

void HostList::save() const {
  json doc = {{"hosts", json::array()}};
  for (size_t i = 1; i < hosts_.size(); ++i) doc["hosts"].push_back(to_json(hosts_[i]));
  std::error_code ec;
  fs::create_directories(path_.parent_path(), ec);
  write_file_atomically(path_, doc.dump(2) + "\n");
}

const Host& HostList::get(const std::string& name) const {
  for (const auto& h : hosts_) {
    if (h.name == name) return h;
  }
  std::string names;
  for (const auto& h : hosts_) names += (names.empty() ? "" : ", ") + h.name;
  throw UserError("No host named `" + name + "` in " + path_.string() + ".",
                  "The hosts are: " + names + " (add one with `mmlab hosts add`).");
}

void HostList::add(Host host) {
  static const std::regex name_form(R"(^[A-Za-z0-9][A-Za-z0-9._-]*$)");
  if (!std::regex_match(host.name, name_form)) {
    throw UserError("The host name `" + host.name + "` is not usable.",
                    "Use letters, digits, `.`, `_` and `-`, starting with a letter or digit.");
  }
  if (host.name == "local" || host.kind == HostKind::kLocal) {
    throw UserError("The host `local` is built in and cannot be added.",
                    "Give a remote target (`ssh://…` or `slurm://…`) and another name.");
  }
  for (const auto& h : hosts_) {
    if (h.name == host.name) {
      throw UserError(
          "A host named `" + host.name + "` exists already.",
          "Remove it first (`mmlab hosts remove " + host.name + "`) or choose another name.");
    }
  }
  if (host.dir.empty()) {
    throw UserError("The host `" + host.name + "` needs a remote folder for its results.",
                    "Give --dir, e.g. --dir /home/you/mmlab-runs.");
  }
  if (host.mmlab.empty()) host.mmlab = "mmlab";
  hosts_.push_back(std::move(host));
}

void HostList::remove(const std::string& name) {
  if (name == "local") {
    throw UserError("The host `local` is built in and cannot be removed.", "");
  }
  get(name);  // names the hosts there are when it is unknown
  for (auto it = hosts_.begin(); it != hosts_.end(); ++it) {
    if (it->name == name) {
      hosts_.erase(it);
      return;
    }
  }
}

}  // namespace mmlab::remote
