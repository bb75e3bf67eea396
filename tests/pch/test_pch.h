// The third-party and standard headers most tests include, precompiled once
// per test binary (tierserve_add_tests in CMakeLists.txt): parsing them is a
// third of a test's compile at -O0. Only headers that do not change with the
// project's code belong here.
#ifndef TIERSERVE_TESTS_PCH_TEST_PCH_H_
#define TIERSERVE_TESTS_PCH_TEST_PCH_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

#endif  // TIERSERVE_TESTS_PCH_TEST_PCH_H_
