//! What the agent makes of etcd client errors: whether one is worth
//! another member, one short cause for the log, and "lease not found".

/// Transport trouble (or no answer): worth trying another member.
pub fn is_transport(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
                | tonic::Code::Unknown
                | tonic::Code::Aborted
        ),
        _ => false,
    }
}

/// One short cause for an etcd client error, for the agent's log: etcd's
/// own message when the server answered (`etcdserver: requested lease not
/// found`), else the innermost cause of the transport chain (`connection
/// refused`, `invalid peer certificate: UnknownIssuer`) instead of
/// tonic/hyper's nested "transport error: tcp connect error: …" wrappers and
/// status debug dumps. The callers put the endpoint in front.
pub fn plain_error(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    let (top, mut src): (String, Option<&(dyn std::error::Error + 'static)>) = match e {
        etcd_client::Error::GRpcStatus(s) => (s.message().to_string(), s.source()),
        other => (other.to_string(), other.source()),
    };
    let mut deepest = None;
    while let Some(s) = src {
        deepest = Some(s);
        src = s.source();
    }
    let text = match deepest {
        None => top,
        Some(d) => match d.downcast_ref::<std::io::Error>() {
            Some(io) => io_text(io),
            None => d.to_string(),
        },
    };
    let text = match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let text = text.trim();
    if text.is_empty() {
        "no details".into()
    } else {
        let mut c = text.chars();
        let first = c.next().expect("not empty");
        // "Connection refused" -> "connection refused" (keeps "TLS", "UnknownIssuer").
        if c.clone().next().is_some_and(char::is_lowercase) {
            first.to_lowercase().chain(c).collect()
        } else {
            text.to_string()
        }
    }
}

fn io_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused (nothing listens there)".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::TimedOut => "timed out".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::UnexpectedEof => "connection closed".into(),
        K::BrokenPipe => "connection closed (broken pipe)".into(),
        _ => match e.get_ref() {
            Some(inner) => inner.to_string(),
            None => e.to_string(),
        },
    }
}

/// An error the caller can tell apart: the lease of a Put is not known
/// to the member (etcd#13675).
pub fn is_lease_not_found(e: &anyhow::Error) -> bool {
    e.to_string().contains("lease not found")
}
