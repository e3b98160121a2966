//! Diagnostics: what is wrong with which object, where, and what was done about it.
//!
//! Each one names the object (kind, namespace, name), the field path (`spec.http[0].route[1].weight`), and where
//! the object was read from when known. Codes follow `istioctl analyze` where one fits (IST0101, …).

use std::fmt;

use crate::input::{Kind, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// An object by kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// `istioctl analyze` code, where one fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// Path of the offending field inside the object, empty for the object as a whole.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Found by cross-object analysis, as `istioctl analyze` finds it ([`crate::analyze`]): it says what will not
    /// work as meant, yet the configuration is served as written (Istio accepts it too), so even an error does not
    /// refuse a change or fail `wait`. `pilotfish analyze` counts it as its severity says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub advisory: bool,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, message)
    }

    pub fn info(message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Info, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            code: None,
            object: None,
            field: String::new(),
            message: message.into(),
            source: None,
            advisory: false,
        }
    }

    /// Marks the diagnostic as [`Diagnostic::advisory`].
    pub fn advisory(mut self) -> Diagnostic {
        self.advisory = true;
        self
    }

    /// An error that means something written is not served as written: not an advisory one.
    pub fn rejects(&self) -> bool {
        self.severity == Severity::Error && !self.advisory
    }

    pub fn code(mut self, code: &'static str) -> Diagnostic {
        self.code = Some(code);
        self
    }

    /// The object the diagnostic is about, and where it was read; the location moves to the field's line once a
    /// field is named.
    pub fn object(mut self, object: ObjectRef, source: Option<Source>) -> Diagnostic {
        self.object = Some(object);
        self.source = source;
        self.locate()
    }

    pub fn field(mut self, field: impl Into<String>) -> Diagnostic {
        self.field = field.into();
        self.locate()
    }

    pub fn source(mut self, source: Option<Source>) -> Diagnostic {
        self.source = source;
        self.locate()
    }

    /// Points the location at the field, when the text it was read from says where that is.
    fn locate(mut self) -> Diagnostic {
        if let Some(source) = self.source.as_ref().filter(|_| !self.field.is_empty()) {
            self.source = Some(source.at_field(&self.field));
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    /// `error[IST0101] VirtualService default/reviews spec.http[0]…: message (at file.yaml:12:5)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.severity)?;
        if let Some(code) = self.code {
            write!(f, "[{code}]")?;
        }
        if let Some(object) = &self.object {
            write!(f, " {object}")?;
        }
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, " (at {source})")?;
        }
        Ok(())
    }
}

/// Diagnostics in a stable order: errors first, then by object, field and message.
pub fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.sort_by(|a, b| {
        (a.severity, &a.object, &a.field, &a.message, a.code)
            .cmp(&(b.severity, &b.object, &b.field, &b.message, b.code))
    });
    diagnostics.dedup();
    diagnostics
}
