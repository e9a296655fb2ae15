#pragma once

#include <string>

namespace natsvisor {

/// The URL (one server or a comma-separated list) with every user, password and token replaced
/// by "***", for logs and errors. Works on any text, malformed or not, so an error about a bad
/// URL never shows its secret. Needs nothing but the standard library (the CLI uses it too).
///
/// The rule, chosen so that no credential can survive it whatever its shape: a credential (user,
/// password or token) always ends at an '@', and may itself hold any character, ',' '@' and
/// "://" included. So anything before the *last* '@' of the whole text may be credential text,
/// in any entry of the list, and becomes "***". What follows the last '@' can hold no
/// credential and is kept as is, as is a text without any '@'. A leading "nats://", "tls://",
/// "ws://" or "wss://" is kept too; any other text before "://" might be a user name.
///
/// This over-redacts a list with credentials on several entries
/// ("nats://u:p@a:1,nats://b:2,tls://t@c:3" becomes "nats://***@c:3"): the hosts before the last
/// credential are hidden with it, because a password such as "p@a:1,nats://b:2,tls://t" reads
/// exactly the same.
std::string redact(const std::string& url);

} // namespace natsvisor
