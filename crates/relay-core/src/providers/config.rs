//! A source's provider config: the registry entry that verifies its requests and that provider's
//! options, typed in the provider's own file and decoded once, when the source is read or
//! configured (sources are cached, so no request parses them).
//!
//! Stored flat in the source's JSON: the tag `provider` (the entry's name; a preset's sources
//! carry the name of the provider it presets, typeform's `hmac`), then the options' own fields.
//! That shape is a contract with every stored source: an option added later carries a serde
//! default, and no tag is ever renamed.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{GivenOptions, PROVIDERS, Provider, find};

/// The stored field naming a source's provider.
const TAG: &str = "provider";

/// A stored source's provider fields besides the tag, as its entry's `decode` takes them.
pub type StoredFields = serde_json::Map<String, serde_json::Value>;

/// The options of one provider: a plain struct in the provider's file, serialized as its stored
/// fields. Any such type qualifies; the registry entry says which one its sources carry.
pub trait ProviderOptions: erased_serde::Serialize + fmt::Debug + Any + Send + Sync {
    /// True when `other` holds options of the same type with the same values.
    fn same_as(&self, other: &dyn ProviderOptions) -> bool;
}

impl<T> ProviderOptions for T
where
    T: Serialize + fmt::Debug + PartialEq + Send + Sync + 'static,
{
    fn same_as(&self, other: &dyn ProviderOptions) -> bool {
        (other as &dyn Any).downcast_ref::<T>() == Some(self)
    }
}

erased_serde::serialize_trait_object!(ProviderOptions);

/// The options of a provider that has none: no stored fields besides the tag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoOptions {}

/// An entry's `decode` for options of type `T`: the stored fields into `T` (fields `T` does not
/// know are ignored, as they always were).
pub(crate) fn decode<T>(fields: StoredFields) -> Result<Arc<dyn ProviderOptions>, serde_json::Error>
where
    T: ProviderOptions + DeserializeOwned,
{
    let options: T = serde_json::from_value(serde_json::Value::Object(fields))?;
    Ok(Arc::new(options))
}

/// Which provider signs a source's requests, with that provider's options.
#[derive(Clone)]
pub struct ProviderConfig {
    entry: &'static Provider,
    options: Arc<dyn ProviderOptions>,
}

impl ProviderConfig {
    /// The config of a source of `entry` with `options`, which must be the type `entry` decodes
    /// (each provider file builds its own).
    pub(crate) fn new(entry: &'static Provider, options: impl ProviderOptions) -> Self {
        Self {
            entry,
            options: Arc::new(options),
        }
    }

    /// The config `--provider name` makes without options (`github`; a `token` source reading
    /// `?token=`); `None` for an unknown name or a provider that needs some (`hmac`).
    pub fn named(name: &str) -> Option<Self> {
        find(name)?.new_config(&GivenOptions::default()).ok()
    }

    /// The registry entry that verifies this config. A preset's sources belong to the provider
    /// it presets (typeform: hmac).
    pub fn entry(&self) -> &'static Provider {
        self.entry
    }

    /// The stored tag (`provider` in a source's JSON).
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// The options as the provider's own type; `None` when they are another provider's.
    pub fn options<T: 'static>(&self) -> Option<&T> {
        (&*self.options as &dyn Any).downcast_ref()
    }
}

/// The entry whose sources are stored under `tag` (presets are stored as their base provider).
fn stored_under(tag: &str) -> Option<&'static Provider> {
    PROVIDERS
        .iter()
        .copied()
        .find(|p| p.name == tag && p.preset_of.is_none())
}

impl PartialEq for ProviderConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name() && self.options.same_as(&*other.options)
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field(TAG, &self.name())
            .field("options", &self.options)
            .finish()
    }
}

impl Serialize for ProviderConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            provider: &'static str,
            #[serde(flatten)]
            options: &'a dyn ProviderOptions,
        }
        Stored {
            provider: self.name(),
            options: &*self.options,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProviderConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = StoredFields::deserialize(deserializer)?;
        let tag = match fields.remove(TAG) {
            Some(serde_json::Value::String(tag)) => tag,
            Some(_) => return Err(D::Error::custom("the provider is not a string")),
            None => return Err(D::Error::missing_field(TAG)),
        };
        let entry = stored_under(&tag).ok_or_else(|| {
            let known: Vec<&str> = PROVIDERS
                .iter()
                .filter(|p| p.preset_of.is_none())
                .map(|p| p.name)
                .collect();
            D::Error::custom(format!(
                "unknown provider {tag:?}, expected one of {}",
                known.join(", ")
            ))
        })?;
        let options = (entry.decode)(fields).map_err(D::Error::custom)?;
        Ok(Self { entry, options })
    }
}
