// SPDX-License-Identifier: GPL-3.0-or-later
// Section readers shared by run configs and experiment files. Internal to core/config.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config/config.h"
#include "core/config/json_reader.h"

namespace mmlab::config_detail {

/// A run's own fields (name, seed) from the run's object.
void read_run_fields(JsonReader& r, RunConfig& c);

void read_model(const nlohmann::json& j, const std::string& path, ModelConfig& c,
                std::vector<std::string>* problems);
void read_train(const nlohmann::json& j, const std::string& path, TrainConfig& c,
                std::vector<std::string>* problems);
void read_data(const nlohmann::json& j, const std::string& path, DataConfig& c,
               std::vector<std::string>* problems);

}  // namespace mmlab::config_detail
