// Shared by cmd_beacon.cc (ps, maps, pagemap, beacon) and cmd_demo.cc (the live process table):
// how beacon data is turned into tables and JSON.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "haywire/beacon/reader.h"

namespace haywire::cli {

// The `ps` table: one row per process; round-robin rows (approximate) are marked with '~',
// rows from a stale block with '!'. At most `max_rows` rows (0: all).
std::string format_process_table(const std::vector<beacon::ProcessRow>& rows, std::size_t max_rows = 0);
nlohmann::json process_rows_json(const std::vector<beacon::ProcessRow>& rows);

// Finds the beacon, retrying for up to `wait_ms` (the companion may still be starting).
// Discovers the beacon, retrying for wait_ms. `hint_file` (may be empty) caches the master's
// guest-physical address between commands (beacon_hint_file: in the VM's run directory).
Result<beacon::BeaconReader> find_beacon(const guest::GuestRam& ram, int wait_ms, const std::string& hint_file);
std::string beacon_hint_file(const std::string& vm_name);

}  // namespace haywire::cli
