//! The objects of a restored backup: views, triggers, routines and events, created on the
//! live server once every table of the backup is in place (the tables they name must exist).
//!
//! Each object is created with the session it was defined in (`sql_mode`, time zone), as the
//! temporary server showed it. Enabled events are created `DISABLE ON SLAVE`: the node is (or
//! becomes) a replica, the master runs them.

use dbjobs_kit::sql::{qualified, quote_ident};
use dbjobs_sdk::{Host, JobError};

use crate::physical::catalog::{Catalog, Kind, ObjectDef, TableDef};
use crate::statement::exec;

/// Views, triggers, routines and events, after every table exists. Enabled events are
/// created `DISABLE ON SLAVE`: the node is (or becomes) a replica, the master runs them.
pub fn create_objects(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    exec(host, "SET SESSION sql_mode=''", &[])?;
    create_views(host, catalog)?;
    for t in &catalog.triggers {
        create_object(host, t, "trigger")?;
    }
    for r in &catalog.routines {
        create_object(host, r, "routine")?;
    }
    for e in &catalog.events {
        create_object(host, e, "event")?;
        if e.enabled {
            let q = qualified(&e.schema, &e.name);
            exec(host, &format!("ALTER EVENT {q} DISABLE ON SLAVE"), &[])?;
        }
    }
    Ok(())
}

/// Views may use other views: create in passes until none is left or no progress is made.
fn create_views(host: &Host<'_>, catalog: &Catalog) -> Result<(), JobError> {
    let mut pending: Vec<&TableDef> = catalog
        .tables
        .iter()
        .filter(|t| t.kind == Kind::View)
        .collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for v in &pending {
            exec(host, &format!("USE {}", quote_ident(&v.schema)), &[])?;
            if let Err(e) = exec(host, &v.create, &[]) {
                last_error = Some(e.context(format!("view {}.{}", v.schema, v.name)));
                failed.push(*v);
            }
        }
        if failed.len() == pending.len() {
            let e = last_error.expect("a view failed");
            return Err(e.context(format!("cannot recreate {} view(s)", failed.len())));
        }
        pending = failed;
    }
    Ok(())
}

/// Recreate a trigger, routine or event in the session it was defined in.
fn create_object(host: &Host<'_>, o: &ObjectDef, what: &str) -> Result<(), JobError> {
    exec(host, &format!("USE {}", quote_ident(&o.schema)), &[])?;
    exec(host, "SET SESSION sql_mode=?", &[&o.sql_mode])?;
    if let Some(tz) = &o.time_zone {
        exec(host, "SET SESSION time_zone=?", &[tz])?;
    }
    exec(host, &o.create, &[])
        .map_err(|e| e.context(format!("cannot recreate {what} {}.{}", o.schema, o.name)))
}
