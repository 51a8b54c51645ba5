//! The struct field offsets the Go probes read, per Go release, from the
//! data file `offsets.json` beside this file (facts; the file says which
//! releases it covers and how it is checked).

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::version::{GoVersion, VersionError};

const TABLE_JSON: &str = include_str!("offsets.json");

/// The fields, by `package.type.field` name as in the data file.
const G_GOID: &str = "runtime.g.goid";
const HTTP_CONN_RWC: &str = "net/http.conn.rwc";
const HTTP_CONN_TLS_STATE: &str = "net/http.conn.tlsState";
const PERSIST_CONN_CONN: &str = "net/http.persistConn.conn";
const PERSIST_CONN_TLS_STATE: &str = "net/http.persistConn.tlsState";
const NET_CONN_FD: &str = "net.conn.fd";
const NETFD_PFD: &str = "net.netFD.pfd";
const NETFD_FAMILY: &str = "net.netFD.family";
const NETFD_SOTYPE: &str = "net.netFD.sotype";
const NETFD_NET: &str = "net.netFD.net";
const POLL_FD_SYSFD: &str = "internal/poll.FD.Sysfd";
const TLS_CONN_CONN: &str = "crypto/tls.Conn.conn";
const ALL_FIELDS: [&str; 12] = [
    G_GOID,
    HTTP_CONN_RWC,
    HTTP_CONN_TLS_STATE,
    PERSIST_CONN_CONN,
    PERSIST_CONN_TLS_STATE,
    NET_CONN_FD,
    NETFD_PFD,
    NETFD_FAMILY,
    NETFD_SOTYPE,
    NETFD_NET,
    POLL_FD_SYSFD,
    TLS_CONN_CONN,
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum OffsetsError {
    #[error("offset table: {0}")]
    Json(#[from] serde_json::Error),
    #[error("offset table: {0}")]
    Version(#[from] VersionError),
    #[error("offset table: field {0} missing, or without an entry at the oldest covered release")]
    Field(&'static str),
}

#[derive(Deserialize)]
struct RawTable {
    covers: RawRange,
    fields: HashMap<String, Vec<RawEntry>>,
}

#[derive(Deserialize)]
struct RawRange {
    oldest: String,
    newest: String,
}

#[derive(Deserialize)]
struct RawEntry {
    since: String,
    offset: u32,
}

/// The table: for each field, `(since, offset)` sorted by release.
#[derive(Debug)]
pub(crate) struct OffsetTable {
    /// Oldest and newest covered minor release (`1.17.0`, `1.23.0`:
    /// every patch release of the newest is covered).
    pub(crate) oldest: GoVersion,
    pub(crate) newest: GoVersion,
    fields: Vec<(&'static str, Vec<(GoVersion, u32)>)>,
}

/// The offsets for one release. From a server connection (`*http.conn`)
/// or a client one (`*http.persistConn`) to the socket: the `net.Conn`
/// interface's data pointer (plaintext only: the TLS state must be nil) is a
/// `*net.TCPConn`, whose `conn.fd` is a `*netFD`, checked to be one (family
/// `AF_INET`/`AF_INET6`, type `SOCK_STREAM`, network `tcp*`) before its
/// `pfd.Sysfd` is taken as the socket's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoOffsets {
    pub(crate) g_goid: u32,
    pub(crate) http_conn_rwc: u32,
    pub(crate) http_conn_tls_state: u32,
    pub(crate) persist_conn_conn: u32,
    pub(crate) persist_conn_tls_state: u32,
    pub(crate) net_conn_fd: u32,
    pub(crate) netfd_pfd: u32,
    pub(crate) netfd_family: u32,
    pub(crate) netfd_sotype: u32,
    pub(crate) netfd_net: u32,
    pub(crate) poll_fd_sysfd: u32,
    /// The `net.Conn` under a `*tls.Conn` (its socket, as above).
    pub(crate) tls_conn_conn: u32,
}

/// Why a release has no offsets.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum NotCovered {
    #[error("Go {version} is older than {oldest}, the oldest release the Go probes support")]
    TooOld { version: GoVersion, oldest: GoVersion },
    #[error("Go {version} is newer than {newest}, the newest release whose struct offsets this agent knows")]
    TooNew { version: GoVersion, newest: GoVersion },
}

static TABLE: LazyLock<Result<OffsetTable, OffsetsError>> = LazyLock::new(|| OffsetTable::parse(TABLE_JSON));

/// The built-in table (its data file is checked by the tests, so an
/// error here means a broken build).
pub(crate) fn table() -> Result<&'static OffsetTable, &'static OffsetsError> {
    TABLE.as_ref()
}

impl OffsetTable {
    pub(crate) fn parse(json: &str) -> Result<OffsetTable, OffsetsError> {
        let raw: RawTable = serde_json::from_str(json)?;
        let oldest = GoVersion::parse_plain(&raw.covers.oldest)?;
        let newest = GoVersion::parse_plain(&raw.covers.newest)?;
        let mut fields = Vec::with_capacity(ALL_FIELDS.len());
        for name in ALL_FIELDS {
            let entries = raw.fields.get(name).ok_or(OffsetsError::Field(name))?;
            let mut by_release = entries
                .iter()
                .map(|e| Ok((GoVersion::parse_plain(&e.since)?, e.offset)))
                .collect::<Result<Vec<_>, VersionError>>()?;
            by_release.sort();
            if by_release.first().is_none_or(|(since, _)| *since > oldest) {
                return Err(OffsetsError::Field(name));
            }
            fields.push((name, by_release));
        }
        Ok(OffsetTable { oldest, newest, fields })
    }

    /// The offsets for `version`, or why there are none.
    pub(crate) fn for_version(&self, version: GoVersion) -> Result<GoOffsets, NotCovered> {
        if version < self.oldest {
            return Err(NotCovered::TooOld { version, oldest: self.oldest });
        }
        // The newest entry names a minor release: its patches are covered.
        if (version.major, version.minor) > (self.newest.major, self.newest.minor) {
            return Err(NotCovered::TooNew { version, newest: self.newest });
        }
        let at = |name: &str| {
            let entries = self.fields.iter().find(|(n, _)| *n == name).map(|(_, e)| e.as_slice()).unwrap_or(&[]);
            entries.iter().rev().find(|(since, _)| *since <= version).map_or(0, |(_, off)| *off)
        };
        Ok(GoOffsets {
            g_goid: at(G_GOID),
            http_conn_rwc: at(HTTP_CONN_RWC),
            http_conn_tls_state: at(HTTP_CONN_TLS_STATE),
            persist_conn_conn: at(PERSIST_CONN_CONN),
            persist_conn_tls_state: at(PERSIST_CONN_TLS_STATE),
            net_conn_fd: at(NET_CONN_FD),
            netfd_pfd: at(NETFD_PFD),
            netfd_family: at(NETFD_FAMILY),
            netfd_sotype: at(NETFD_SOTYPE),
            netfd_net: at(NETFD_NET),
            poll_fd_sysfd: at(POLL_FD_SYSFD),
            tls_conn_conn: at(TLS_CONN_CONN),
        })
    }

    /// Every field's offset for `version`, by name (for the DWARF check).
    #[cfg(test)]
    pub(crate) fn named(&self, version: GoVersion) -> Vec<(&'static str, u32)> {
        let o = self.for_version(version).unwrap();
        let values = [
            o.g_goid,
            o.http_conn_rwc,
            o.http_conn_tls_state,
            o.persist_conn_conn,
            o.persist_conn_tls_state,
            o.net_conn_fd,
            o.netfd_pfd,
            o.netfd_family,
            o.netfd_sotype,
            o.netfd_net,
            o.poll_fd_sysfd,
            o.tls_conn_conn,
        ];
        ALL_FIELDS.into_iter().zip(values).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_table_parses_and_covers_debian_releases() {
        let t = table().unwrap();
        assert_eq!((t.oldest, t.newest), (GoVersion::new(1, 17, 0), GoVersion::new(1, 23, 0)));
        assert_eq!(t.for_version(GoVersion::new(1, 19, 8)).unwrap().g_goid, 152);
        assert_eq!(t.for_version(GoVersion::new(1, 23, 5)).unwrap().g_goid, 160);
        assert_eq!(t.for_version(GoVersion::new(1, 22, 12)).unwrap().g_goid, 152);
    }

    #[test]
    fn releases_outside_the_table_are_refused() {
        let t = table().unwrap();
        assert!(matches!(t.for_version(GoVersion::new(1, 16, 15)), Err(NotCovered::TooOld { .. })));
        assert!(matches!(t.for_version(GoVersion::new(1, 24, 0)), Err(NotCovered::TooNew { .. })));
        let e = t.for_version(GoVersion::new(1, 15, 15)).unwrap_err();
        assert_eq!(e.to_string(), "Go 1.15.15 is older than 1.17.0, the oldest release the Go probes support");
    }

    #[test]
    fn a_field_must_start_at_the_oldest_release() {
        let json = TABLE_JSON.replace(r#"{ "since": "1.17", "offset": 152 },"#, "");
        assert!(matches!(OffsetTable::parse(&json), Err(OffsetsError::Field(G_GOID))));
    }
}
