//! `checklist export`: the verified state as YAML or JSON.

use std::io::Write;

use checklist_backends::atomic::{PRIVATE_FILE_MODE, replace_file};
use checklist_backends::vfs::RealFs;
use checklist_backends::{Codec, JsonCodec, YamlCodec};
use checklist_core::config::Durability;
use checklist_core::{Error, Result, StateStoreExt, document};
use serde_json::json;

use super::Context;
use crate::args::{ExportArgs, FormatArg};
use crate::output::Outcome;

pub(crate) async fn run(ctx: &Context<'_>, args: ExportArgs, err: &mut dyn Write) -> Result<Outcome> {
    let opened = ctx.open(err).await?;
    let store = &opened.backend.store;
    let state = store.read_existing().await?;
    let format = args.format.unwrap_or(if ctx.as_json && args.output.is_none() {
        FormatArg::Json
    } else {
        FormatArg::Yaml
    });
    let codec: &dyn Codec = match format {
        FormatArg::Yaml => &YamlCodec,
        FormatArg::Json => &JsonCodec,
    };
    // Re-sealing at the same revision reproduces the stored document exactly (same
    // revision, same checksum), now in the requested format.
    let sealed = document::seal(&state, state.revision, store.info().location_path())?;
    let bytes = codec.encode(&sealed.value).map_err(|e| Error::SchemaInvalid {
        path: store.info().location_path().to_owned(),
        field_path: "/".to_owned(),
        message: e.to_string(),
    })?;
    let Some(output) = args.output else {
        return Ok(Outcome::Raw(bytes));
    };
    replace_file(&RealFs, &output, &bytes, Durability::Full, PRIVATE_FILE_MODE)?;
    Ok(Outcome::report(
        format!(
            "Exported revision {} as {} to {}.",
            state.revision,
            codec.name(),
            output.display()
        ),
        json!({"ok": true, "path": output, "format": codec.name(), "revision": state.revision, "checksum": sealed.checksum, "bytes": bytes.len()}),
    ))
}
