#pragma once
// Template definitions of supervisors/lease_pool.hpp.
