// A fixture of the ctest layer_includes_finds_wrong_way (cmake/check_layers.cmake): a protocol-layer file with
// two includes the check must report (a higher layer by directory, and a top-level cnode file) and two it must
// not (its own layer, a lower layer). Never compiled.
#pragma once
#include "sibling.hpp"
#include "util/bytes.hpp"
#include "pool/pool.hpp"
#include "options.hpp"
