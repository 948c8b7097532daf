//! flannel's scratch file `<dataDir>/<containerID>`, read back as the call
//! it records (DEL without a record, or after flannel's own DEL failed).

use crate::ctx::Ctx;
use crate::record::Call;
use serde_json::Value;

/// flannel's scratch file: the exact config its delegate got. An empty or
/// torn file (flannel-io/cni-plugin#43) is skipped, not fatal.
pub fn scratch_call(ctx: &Ctx, bytes: &[u8]) -> Option<Call> {
    match serde_json::from_slice::<Value>(bytes) {
        // flannel reads it back into `types.NetConf` (Go's key rule).
        Ok(conf) => field_of_obj(&conf, "type").map(|t| Call {
            type_: t.to_string(),
            conf: conf.clone(),
        }),
        Err(e) => {
            ctx.log.error(&format!(
                "delegate config is damaged ({} bytes): {e}",
                bytes.len()
            ));
            None
        }
    }
}

fn field_of_obj<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    cni::gojson::field_of(v.as_object()?, field)?.as_str()
}
