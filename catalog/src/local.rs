//! The local catalog: one JSON document, replaced atomically (temp file, fsync, rename, fsync of
//! the directory) under an exclusive file lock, so two processes (`tarn serve` and a `tarn query`)
//! can use it at once: writers are serialized, readers always see a whole version.

use crate::Catalog;
use crate::error::{CatalogError, Result};
use crate::model::{Partition, TableDef};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    version: u64,
    #[serde(default)]
    databases: BTreeMap<String, Database>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Database {
    #[serde(default)]
    tables: BTreeMap<String, TableEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TableEntry {
    def: TableDef,
    /// keyed by the values joined with `/`
    #[serde(default)]
    partitions: BTreeMap<String, Partition>,
}

#[derive(Debug, Clone)]
pub struct LocalCatalog {
    dir: PathBuf,
}

impl LocalCatalog {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(CatalogError::io("creating the catalog directory", &dir))?;
        Ok(Self { dir })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("catalog.json")
    }

    fn read(&self) -> Result<State> {
        let path = self.file();
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                CatalogError::Service(format!("catalog file {} is corrupt: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(CatalogError::io("reading the catalog", &path)(e)),
        }
    }

    /// Runs `f` on the current state under the lock and commits what it leaves.
    fn mutate<T: Send + 'static>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let lock_path = self.dir.join("catalog.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(CatalogError::io("opening the catalog lock", &lock_path))?;
        lock.lock()
            .map_err(CatalogError::io("locking the catalog", &lock_path))?;
        let mut state = self.read()?;
        let out = f(&mut state)?;
        state.version += 1;
        let body = serde_json::to_vec_pretty(&state).expect("the catalog serializes");
        let tmp = self
            .dir
            .join(format!("catalog.json.tmp-{}", std::process::id()));
        let mut file = File::create(&tmp).map_err(CatalogError::io("writing the catalog", &tmp))?;
        file.write_all(&body)
            .and_then(|_| file.sync_all())
            .map_err(CatalogError::io("writing the catalog", &tmp))?;
        fs::rename(&tmp, self.file())
            .map_err(CatalogError::io("replacing the catalog", self.file()))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(CatalogError::io("syncing the catalog directory", &self.dir))?;
        drop(lock);
        Ok(out)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LocalCatalog) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| CatalogError::Service(format!("catalog task failed: {e}")))?
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn table_mut<'a>(state: &'a mut State, db: &str, table: &str) -> Result<&'a mut TableEntry> {
    state
        .databases
        .get_mut(db)
        .ok_or_else(|| CatalogError::NotFound {
            what: "database",
            name: db.into(),
        })?
        .tables
        .get_mut(table)
        .ok_or_else(|| CatalogError::NotFound {
            what: "table",
            name: format!("{db}.{table}"),
        })
}

#[async_trait]
impl Catalog for LocalCatalog {
    async fn ensure_database(&self, database: &str) -> Result<()> {
        let db = database.to_string();
        self.blocking(move |c| {
            if c.read()?.databases.contains_key(&db) {
                return Ok(());
            }
            c.mutate(move |s| {
                s.databases.entry(db).or_default();
                Ok(())
            })
        })
        .await
    }

    async fn upsert_table(&self, database: &str, table: &TableDef) -> Result<()> {
        let (db, def) = (database.to_string(), table.clone());
        self.blocking(move |c| {
            if let Some(t) = c
                .read()?
                .databases
                .get(&db)
                .and_then(|d| d.tables.get(&def.name))
                && t.def == def
            {
                return Ok(());
            }
            c.mutate(move |s| {
                let d = s
                    .databases
                    .get_mut(&db)
                    .ok_or_else(|| CatalogError::NotFound {
                        what: "database",
                        name: db.clone(),
                    })?;
                match d.tables.get_mut(&def.name) {
                    Some(t) => t.def = def,
                    None => {
                        d.tables.insert(
                            def.name.clone(),
                            TableEntry {
                                def,
                                partitions: BTreeMap::new(),
                            },
                        );
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<TableDef>> {
        let (db, name) = (database.to_string(), name.to_string());
        self.blocking(move |c| {
            Ok(c.read()?
                .databases
                .get(&db)
                .and_then(|d| d.tables.get(&name))
                .map(|t| t.def.clone()))
        })
        .await
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<TableDef>> {
        let db = database.to_string();
        self.blocking(move |c| {
            let s = c.read()?;
            let d = s.databases.get(&db).ok_or_else(|| CatalogError::NotFound {
                what: "database",
                name: db.clone(),
            })?;
            Ok(d.tables.values().map(|t| t.def.clone()).collect())
        })
        .await
    }

    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize> {
        let (db, table, parts) = (database.to_string(), table.to_string(), partitions.to_vec());
        self.blocking(move |c| {
            // nothing new: no write at all
            {
                let s = c.read()?;
                let t = s
                    .databases
                    .get(&db)
                    .and_then(|d| d.tables.get(&table))
                    .ok_or_else(|| CatalogError::NotFound {
                        what: "table",
                        name: format!("{db}.{table}"),
                    })?;
                if parts
                    .iter()
                    .all(|p| t.partitions.contains_key(&p.values.join("/")))
                {
                    return Ok(0);
                }
            }
            c.mutate(move |s| {
                let t = table_mut(s, &db, &table)?;
                let mut added = 0;
                for p in parts {
                    if p.values.len() != t.def.partition_keys.len() {
                        return Err(CatalogError::Service(format!(
                            "partition {:?} has {} values; table {table} has {} partition keys",
                            p.values,
                            p.values.len(),
                            t.def.partition_keys.len()
                        )));
                    }
                    let k = p.values.join("/");
                    if let std::collections::btree_map::Entry::Vacant(slot) = t.partitions.entry(k)
                    {
                        slot.insert(p);
                        added += 1;
                    }
                }
                Ok(added)
            })
        })
        .await
    }

    async fn update_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
        location: &str,
    ) -> Result<()> {
        let (db, table, values, location) = (
            database.to_string(),
            table.to_string(),
            values.to_vec(),
            location.to_string(),
        );
        self.blocking(move |c| {
            c.mutate(move |s| {
                let t = table_mut(s, &db, &table)?;
                let p = t.partitions.get_mut(&values.join("/")).ok_or_else(|| {
                    CatalogError::NotFound {
                        what: "partition",
                        name: format!("{table}/{}", values.join("/")),
                    }
                })?;
                p.location = location;
                Ok(())
            })
        })
        .await
    }

    async fn get_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        let (db, table) = (database.to_string(), table.to_string());
        self.blocking(move |c| {
            let s = c.read()?;
            let t = s
                .databases
                .get(&db)
                .and_then(|d| d.tables.get(&table))
                .ok_or_else(|| CatalogError::NotFound {
                    what: "table",
                    name: format!("{db}.{table}"),
                })?;
            let mut parts: Vec<Partition> = t.partitions.values().cloned().collect();
            parts.sort_by(|a, b| a.values.cmp(&b.values));
            Ok(parts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_catalog_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let cat = LocalCatalog::open(dir.path()).unwrap();
        crate::conformance::catalog(&cat).await;
    }

    #[tokio::test]
    async fn two_handles_never_lose_a_write() {
        // two catalogs on one directory stand for two processes
        let dir = tempfile::tempdir().unwrap();
        let a = LocalCatalog::open(dir.path()).unwrap();
        let b = LocalCatalog::open(dir.path()).unwrap();
        a.ensure_database("db").await.unwrap();
        a.upsert_table("db", &crate::conformance::sample_table("t"))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let c = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let p = Partition {
                    values: vec![format!("2024-01-{i:02}")],
                    location: format!("file:///x/dt={i}/"),
                };
                c.add_partitions("db", "t", &[p]).await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(b.get_partitions("db", "t").await.unwrap().len(), 40);
    }
}
