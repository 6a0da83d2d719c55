//! `CONTROL` commands (cxenstored `xenstored_control.c`; WIRE.md §10):
//! `help`, `check`, `quota [set <name> <val> | <domid>]`, `print <text>`,
//! and ours: `quota-set <domid> <name> <val> [<name> <val>]...` sets quotas
//! for one introduced domain (Xen 4.17 has only global quotas; Xen 4.19's
//! `SET_QUOTA` message does the same per domain), e.g. a bigger node quota
//! for a driver domain. Unknown commands get `EINVAL`.

use xenstore::{DomId, XsErrno};

/// The `help` text: one `name\targs` line per command, as cx prints it.
pub(crate) const HELP: &str = "check\t\nhelp\t\nprint\t<string>\nquota\t[set <name> <val>|<domid>]\nquota-set\t<domid> <name> <val> [<name> <val>]...\n";

/// A parsed CONTROL request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Help,
    Check,
    Print(String),
    QuotaShow,
    QuotaSet(String, u32),
    QuotaOf(DomId),
    QuotaSetDomain(DomId, Vec<(String, u32)>),
}

/// Parse the NUL-separated arguments of a CONTROL request.
pub(crate) fn parse(args: &[Vec<u8>]) -> Result<Control, XsErrno> {
    let text: Vec<&str> = args
        .iter()
        .map(|a| std::str::from_utf8(a).map_err(|_| XsErrno::Einval))
        .collect::<Result<_, _>>()?;
    match text.as_slice() {
        ["help"] => Ok(Control::Help),
        ["check"] => Ok(Control::Check),
        ["print", rest @ ..] => Ok(Control::Print(rest.join(" "))),
        ["quota"] => Ok(Control::QuotaShow),
        ["quota", "set", name, val] => val
            .parse::<u32>()
            .map(|v| Control::QuotaSet((*name).to_string(), v))
            .map_err(|_| XsErrno::Einval),
        ["quota", d] => d
            .parse::<DomId>()
            .map(Control::QuotaOf)
            .map_err(|_| XsErrno::Einval),
        ["quota-set", d, pairs @ ..] if !pairs.is_empty() && pairs.len() % 2 == 0 => {
            let d = d.parse::<DomId>().map_err(|_| XsErrno::Einval)?;
            let set = pairs
                .chunks(2)
                .map(|p| {
                    p[1].parse::<u32>()
                        .map(|v| (p[0].to_string(), v))
                        .map_err(|_| XsErrno::Einval)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Control::QuotaSetDomain(d, set))
        }
        _ => Err(XsErrno::Einval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let a = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(parse(&a(&["help"])), Ok(Control::Help));
        assert_eq!(
            parse(&a(&["print", "hi", "there"])),
            Ok(Control::Print("hi there".into()))
        );
        assert_eq!(
            parse(&a(&["quota", "set", "nodes", "5"])),
            Ok(Control::QuotaSet("nodes".into(), 5))
        );
        assert_eq!(parse(&a(&["quota", "7"])), Ok(Control::QuotaOf(DomId(7))));
        assert_eq!(
            parse(&a(&["quota-set", "7", "nodes", "5000", "memory", "9"])),
            Ok(Control::QuotaSetDomain(
                DomId(7),
                vec![("nodes".into(), 5000), ("memory".into(), 9)]
            ))
        );
        assert_eq!(
            parse(&a(&["quota-set", "7", "nodes"])),
            Err(XsErrno::Einval)
        );
        assert_eq!(
            parse(&a(&["quota-set", "7", "nodes", "x"])),
            Err(XsErrno::Einval)
        );
        assert_eq!(parse(&a(&["bogus"])), Err(XsErrno::Einval));
        assert_eq!(parse(&[]), Err(XsErrno::Einval));
    }
}
