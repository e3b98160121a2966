//! What every target does with text: read it, translate it for the classes it can have, and check that every
//! error names its object or where it was read.

use translator::{LastValid, ProxyClass, Role, Severity, Translator};

pub fn translate_all(text: &str) {
    let read = translator::read(text, "fuzz.yaml");
    for diagnostic in read.diagnostics.iter().filter(|d| d.severity == Severity::Error) {
        assert!(diagnostic.object.is_some() || diagnostic.source.is_some(), "unnamed error: {diagnostic}");
    }
    for object in &read.unreadable {
        assert!(read.diagnostics.iter().any(|d| d.object.as_ref() == Some(object)), "{object} unnamed");
    }
    let mut last_valid = LastValid::default();
    let translator = Translator::prepare(None, read.inputs, read.ignored, &read.unreadable, &mut last_valid);
    for namespace in ["default", "shop", "istio-system"] {
        let mut gateway = ProxyClass::new(Role::Gateway);
        gateway.namespace = namespace.to_owned();
        gateway.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
        let _ = translator.translate(&gateway);
        let mut sidecar = ProxyClass::new(Role::Sidecar);
        sidecar.namespace = namespace.to_owned();
        let _ = translator.translate(&sidecar);
    }
}
