//! What the director's link allows: checks of a change against the director's own address
//! (DIP), its subnet and its port's MAC ([`Director`]), on top of the model's own validation.
//!
//! In direct routing the director rewrites only the destination MAC, so a real server must be
//! a unicast host on the director's subnet, and neither the director itself nor one of its
//! virtual addresses (frames would come back to the director). A virtual address is neither
//! the DIP nor a real server's address. A static neighbour never maps to the port's own MAC or
//! to a group or zero MAC. Every refusal names the address and why; the server reports it as a
//! refused change ([`crate::proto::ERR_REFUSED`]), both for single requests and for each line
//! of a rules text.

use crate::grammar::Command;
use crate::proto::Director;
use rvs_dataplane::model::{Forward, Model, ModelError, ServerSpec, StaticNeighbour};
use rvs_dataplane::report::MacAddr;
use std::net::Ipv4Addr;

fn refuse(msg: String) -> Result<(), ModelError> {
    Err(ModelError::Invalid(msg))
}

impl Director {
    /// The subnet's directed broadcast address.
    fn subnet_broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.dip) | !u32::from(self.netmask()))
    }

    /// Check `model` after `cmd` was applied to it (the changed entries are in it).
    pub fn check_command(&self, model: &Model, cmd: &Command) -> Result<(), ModelError> {
        match cmd {
            Command::AddService(s) => self.check_vip(model, s.key.vip),
            Command::AddServer(_, s) | Command::EditServer(_, s) => self.check_server(model, s),
            Command::SetNeighbour(n) => self.check_static(n),
            _ => Ok(()),
        }
    }

    /// A virtual address: not the DIP, not loopback, not a real server's address.
    pub fn check_vip(&self, model: &Model, vip: Ipv4Addr) -> Result<(), ModelError> {
        if vip == self.dip {
            return refuse(format!(
                "virtual address {vip} is the director's own address (DIP)"
            ));
        }
        if vip.is_loopback() {
            return refuse(format!("virtual address {vip} is a loopback address"));
        }
        for svc in model.services() {
            if svc.servers.iter().any(|r| r.spec.addr == vip) {
                return refuse(format!(
                    "virtual address {vip} is a real server address (in service {})",
                    svc.spec.key
                ));
            }
        }
        Ok(())
    }

    /// A real server: a unicast host address, not the DIP nor a VIP; in direct routing, on the
    /// director's subnet and neither its network nor its broadcast address.
    pub fn check_server(&self, model: &Model, s: &ServerSpec) -> Result<(), ModelError> {
        let a = s.addr;
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
            return refuse(format!(
                "real server address {a} is not a unicast host address"
            ));
        }
        if a.is_loopback() {
            return refuse(format!("real server address {a} is a loopback address"));
        }
        if a == self.dip {
            return refuse(format!(
                "real server address {a} is the director's own address (DIP)"
            ));
        }
        if let Some(svc) = model.services().iter().find(|v| v.spec.key.vip == a) {
            return refuse(format!(
                "real server address {a} is a virtual service address (service {})",
                svc.spec.key
            ));
        }
        if s.forward == Forward::Dr {
            let (net, len) = (self.network(), self.prefix_len.min(32));
            if !self.on_link(a) {
                return refuse(format!(
                    "real server address {a} is not on the director's subnet {net}/{len} \
                     (direct routing needs the real server on the director's link)"
                ));
            }
            if len <= 30 && a == net {
                return refuse(format!(
                    "real server address {a} is the network address of {net}/{len}"
                ));
            }
            if len <= 30 && a == self.subnet_broadcast() {
                return refuse(format!(
                    "real server address {a} is the broadcast address of {net}/{len}"
                ));
            }
        }
        Ok(())
    }

    /// A static neighbour: a host on the director's subnet other than the director, whose MAC is
    /// a unicast MAC other than the port's own.
    pub fn check_static(&self, n: &StaticNeighbour) -> Result<(), ModelError> {
        let (a, mac) = (n.addr, MacAddr(n.mac));
        if n.mac == self.mac {
            return refuse(format!(
                "static neighbour {a}: {mac} is the director's own MAC"
            ));
        }
        if n.mac[0] & 1 == 1 {
            return refuse(format!(
                "static neighbour {a}: {mac} is a multicast (group) MAC"
            ));
        }
        if n.mac == [0; 6] {
            return refuse(format!("static neighbour {a}: {mac} is the zero MAC"));
        }
        if a == self.dip {
            return refuse(format!(
                "static neighbour {a} is the director's own address (DIP)"
            ));
        }
        if a.is_loopback() || !self.on_link(a) {
            return refuse(format!(
                "static neighbour {a} is not on the director's subnet {}/{}",
                self.network(),
                self.prefix_len.min(32)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::model::{Protocol, SchedulerKind, ServiceKey, ServiceSpec};

    fn director(prefix_len: u8) -> Director {
        Director {
            dip: Ipv4Addr::new(198, 18, 0, 2),
            prefix_len,
            mac: [2, 0, 0, 0, 0, 1],
        }
    }

    fn rs(addr: [u8; 4]) -> ServerSpec {
        ServerSpec {
            addr: addr.into(),
            port: 80,
            weight: 1,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        }
    }

    fn model() -> Model {
        let mut m = Model::new(4, 4);
        let key = ServiceKey {
            proto: Protocol::Tcp,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
        };
        m.add_service(ServiceSpec {
            key,
            scheduler: SchedulerKind::Rr,
            persistent: None,
            netmask: Ipv4Addr::BROADCAST,
            flags: vec![],
        })
        .unwrap();
        m.add_server(&key, rs([198, 18, 0, 11])).unwrap();
        m
    }

    #[test]
    fn subnet_arithmetic() {
        let d = director(24);
        assert_eq!(d.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(d.network(), Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(d.subnet_broadcast(), Ipv4Addr::new(198, 18, 0, 255));
        assert!(d.on_link(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!d.on_link(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(director(0).netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(director(0).on_link(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(director(40).netmask(), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn real_servers_are_hosts_on_the_link() {
        let (d, m) = (director(24), model());
        assert_eq!(d.check_server(&m, &rs([198, 18, 0, 12])), Ok(()));
        for (a, want) in [
            ([0, 0, 0, 0], "not a unicast host"),
            ([255, 255, 255, 255], "not a unicast host"),
            ([224, 0, 0, 1], "not a unicast host"),
            ([127, 0, 0, 1], "loopback"),
            ([198, 18, 0, 2], "director's own address"),
            (
                [198, 18, 0, 100],
                "virtual service address (service tcp 198.18.0.100:80)",
            ),
            (
                [198, 18, 1, 12],
                "not on the director's subnet 198.18.0.0/24",
            ),
            ([198, 18, 0, 0], "network address of 198.18.0.0/24"),
            ([198, 18, 0, 255], "broadcast address of 198.18.0.0/24"),
        ] {
            let e = d.check_server(&m, &rs(a)).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
            assert!(e.contains(&Ipv4Addr::from(a).to_string()), "{e}");
        }
        // Routed modes (once supported) need no shared link.
        let mut tun = rs([10, 0, 0, 1]);
        tun.forward = Forward::Tunnel;
        assert_eq!(d.check_server(&m, &tun), Ok(()));
        // A /31 and a /32 have no network or broadcast address to refuse.
        let d31 = Director {
            dip: Ipv4Addr::new(198, 18, 0, 2),
            ..director(31)
        };
        assert_eq!(d31.check_server(&m, &rs([198, 18, 0, 3])), Ok(()));
    }

    #[test]
    fn virtual_addresses_and_static_neighbours() {
        let (d, m) = (director(24), model());
        assert_eq!(d.check_vip(&m, Ipv4Addr::new(198, 18, 0, 101)), Ok(()));
        let e = |v: [u8; 4]| d.check_vip(&m, v.into()).unwrap_err().to_string();
        assert!(e([198, 18, 0, 2]).contains("director's own address"));
        assert!(e([198, 18, 0, 11]).contains("real server address"));
        assert!(e([127, 0, 0, 2]).contains("loopback"));
        let n = |a: [u8; 4], mac: [u8; 6]| StaticNeighbour {
            addr: a.into(),
            mac,
        };
        let ok = [2, 0, 0, 0, 0, 0x12];
        assert_eq!(d.check_static(&n([198, 18, 0, 12], ok)), Ok(()));
        for (a, mac, want) in [
            ([198, 18, 0, 12], [2, 0, 0, 0, 0, 1], "director's own MAC"),
            ([198, 18, 0, 12], [0x33, 0x33, 0, 0, 0, 1], "multicast"),
            ([198, 18, 0, 12], [0; 6], "zero MAC"),
            ([198, 18, 0, 2], ok, "director's own address"),
            ([198, 18, 9, 12], ok, "not on the director's subnet"),
            ([127, 0, 0, 1], ok, "not on the director's subnet"),
        ] {
            let e = d.check_static(&n(a, mac)).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?} {mac:?}: {e}");
        }
    }
}
