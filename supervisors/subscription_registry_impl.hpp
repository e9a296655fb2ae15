#pragma once
// Template definitions of supervisors/subscription_registry.hpp.
