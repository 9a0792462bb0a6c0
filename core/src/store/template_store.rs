//! Checklist template versions published to this device (their TOML sources).

use rusqlite::params;

use super::{Error, Store};

/// A published template version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedTemplate {
    /// `id@version`, the name it is parsed under.
    pub name: String,
    pub source: String,
}

impl Store {
    /// Template sources published to this device, oldest first.
    pub fn published_templates(&self) -> Result<Vec<PublishedTemplate>, Error> {
        // Read on the writer: it has the schema loaded already (this runs at open).
        let w = self.writer();
        let mut st = w.conn.prepare_cached("SELECT id || '@' || version, source FROM templates ORDER BY published_at, id, version")?;
        let rows = st.query_map([], |r| Ok(PublishedTemplate { name: r.get(0)?, source: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a published template version (idempotent for identical content).
    pub fn save_template(&self, id: &str, version: u32, sha256: &str, source: &str, at_ms: i64) -> Result<(), Error> {
        let w = self.writer();
        w.conn.execute(
            "INSERT INTO templates (id, version, sha256, source, published_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id, version) DO NOTHING",
            params![id, version, sha256, source, at_ms],
        )?;
        Ok(())
    }
}
