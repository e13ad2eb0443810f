// Fixture (see protocol/wrong_way.hpp): a top-level file, so of the cnode layer.
#pragma once
