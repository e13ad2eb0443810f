// Fixture (see wrong_way.hpp): a file of the protocol layer.
#pragma once
