//! Building libvirt typed-parameter lists.

use rpc::protocol::remote::{TypedParam, TypedParamValue};

/// A typed-parameter list under construction.
#[derive(Debug, Default)]
pub(crate) struct Params(pub(crate) Vec<TypedParam>);

impl Params {
    fn push(&mut self, field: String, value: TypedParamValue) {
        self.0.push(TypedParam { field, value });
    }

    pub(crate) fn int(&mut self, field: impl Into<String>, v: i32) {
        self.push(field.into(), TypedParamValue::Int(v));
    }

    pub(crate) fn uint(&mut self, field: impl Into<String>, v: u32) {
        self.push(field.into(), TypedParamValue::UInt(v));
    }

    pub(crate) fn ullong(&mut self, field: impl Into<String>, v: u64) {
        self.push(field.into(), TypedParamValue::ULLong(v));
    }

    pub(crate) fn llong(&mut self, field: impl Into<String>, v: i64) {
        self.push(field.into(), TypedParamValue::LLong(v));
    }

    pub(crate) fn string(&mut self, field: impl Into<String>, v: impl Into<String>) {
        self.push(field.into(), TypedParamValue::String(v.into()));
    }

    pub(crate) fn boolean(&mut self, field: impl Into<String>, v: bool) {
        self.push(field.into(), TypedParamValue::Boolean(i32::from(v)));
    }

    /// An unsigned figure, only when it is known.
    pub(crate) fn opt_ullong(&mut self, field: impl Into<String>, v: Option<u64>) {
        if let Some(v) = v {
            self.ullong(field, v);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// A count on the wire.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
