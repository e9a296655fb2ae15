// Tests of the pure core subscription_registry: see its header. (Filled in by its own commit.)
#include <catch2/catch.hpp>
