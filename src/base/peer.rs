//! Who counts as one client address, for the limits kept per address.

use std::net::IpAddr;

/// An IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64, the smallest network a host
/// is usually given (one host may hold all of its addresses).
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}
