// Tests of the pure core deadline_table: see its header. (Filled in by its own commit.)
#include <catch2/catch.hpp>
