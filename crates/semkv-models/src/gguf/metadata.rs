//! Typed access to GGUF metadata values, with errors that name the key.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use super::GgufError;

/// Typed access to GGUF metadata values.
pub(crate) struct Metadata<'a>(pub(crate) &'a HashMap<String, Value>);

impl<'a> Metadata<'a> {
    pub(super) fn get(&self, key: &str) -> Result<&'a Value, GgufError> {
        self.0
            .get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    fn type_error(key: &str, expected: &'static str) -> GgufError {
        GgufError::KeyType {
            key: key.to_owned(),
            expected,
        }
    }

    /// A string value.
    pub(crate) fn string(&self, key: &str) -> Result<&'a str, GgufError> {
        match self.get(key)? {
            Value::String(s) => Ok(s),
            _ => Err(Self::type_error(key, "a string")),
        }
    }

    /// A string value, if present.
    pub(crate) fn opt_string(&self, key: &str) -> Result<Option<&'a str>, GgufError> {
        self.0
            .contains_key(key)
            .then(|| self.string(key))
            .transpose()
    }

    /// A non-negative integer value of any integer type.
    pub(crate) fn u64(&self, key: &str) -> Result<u64, GgufError> {
        let value = match *self.get(key)? {
            Value::U8(v) => Some(u64::from(v)),
            Value::U16(v) => Some(u64::from(v)),
            Value::U32(v) => Some(u64::from(v)),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        };
        value.ok_or_else(|| Self::type_error(key, "a non-negative integer"))
    }

    pub(super) fn usize(&self, key: &str) -> Result<usize, GgufError> {
        usize::try_from(self.u64(key)?).map_err(|_| Self::type_error(key, "a size"))
    }

    pub(super) fn opt_usize(&self, key: &str) -> Result<Option<usize>, GgufError> {
        self.0
            .contains_key(key)
            .then(|| self.usize(key))
            .transpose()
    }

    /// A 32-bit unsigned integer (e.g. a token id), if present.
    pub(crate) fn opt_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.0
            .contains_key(key)
            .then(|| {
                u32::try_from(self.u64(key)?).map_err(|_| Self::type_error(key, "a 32-bit id"))
            })
            .transpose()
    }

    /// A boolean, if present.
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::type_error(key, "a boolean")),
        }
    }

    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(f64::from(*v))),
            Some(Value::F64(v)) => Ok(Some(*v)),
            Some(_) => self.u64(key).map(|v| Some(v as f64)),
        }
    }

    /// An array value.
    pub(crate) fn array(&self, key: &str) -> Result<&'a [Value], GgufError> {
        match self.get(key)? {
            Value::Array(values) => Ok(values),
            _ => Err(Self::type_error(key, "an array")),
        }
    }

    /// An array value, if present.
    pub(crate) fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>, GgufError> {
        self.0
            .contains_key(key)
            .then(|| self.array(key))
            .transpose()
    }
}
