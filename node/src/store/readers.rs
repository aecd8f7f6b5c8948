//! Who may read a file's bytes, merged over every manifest that listed the file.
//!
//! Bytes are asked for and served by file id, and one file id may be listed by many manifests
//! (anyone can sign a manifest naming a file's id, size and chunk size: all of them are public in
//! the gossiped manifest). So a file's access rights belong to the file, and each manifest that
//! lists it can only narrow them: a file listed by a public manifest and by one restricted to
//! organisation X is readable by X only, whichever manifest a reader asks through.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who may read a file held here.
///
/// Stored in `FileRecord.readers`: absent = [`Readers::Anyone`], a list of names =
/// [`Readers::Only`] (an empty list, since store layout 2, means nobody).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Readers {
    /// Every manifest that listed the file is public.
    #[default]
    Anyone,
    /// Only nodes delegated to one of these organisations. Empty: nobody (the manifests that
    /// listed the file have no allowed organisation in common).
    Only(BTreeSet<String>),
}

impl Readers {
    /// The readers of one manifest, from its `Metadata.readers` (empty = public).
    pub fn from_metadata(readers: &[String]) -> Readers {
        if readers.is_empty() {
            Readers::Anyone
        } else {
            Readers::Only(readers.iter().cloned().collect())
        }
    }

    /// True for [`Readers::Anyone`].
    pub fn is_anyone(&self) -> bool {
        matches!(self, Readers::Anyone)
    }

    /// True unless anyone may read.
    pub fn is_restricted(&self) -> bool {
        !self.is_anyone()
    }

    /// The readers both `self` and `other` allow: access only narrows, never widens.
    pub fn narrowed(&self, other: &Readers) -> Readers {
        match (self, other) {
            (Readers::Anyone, r) | (r, Readers::Anyone) => r.clone(),
            (Readers::Only(a), Readers::Only(b)) => Readers::Only(a.intersection(b).cloned().collect()),
        }
    }

    /// Whether a node delegated to `organisations` (verified, from the trust chain) may read: one
    /// of them is an allowed organisation or a sub-unit of one (`Bo Y te/Cuc CNTT` of `Bo Y te`).
    pub fn allows(&self, organisations: &[String]) -> bool {
        match self {
            Readers::Anyone => true,
            // A sub-unit reads what its organisation may: "Bo Y te/Cuc CNTT" reads "Bo Y te"'s
            // data (delegates can only name sub-units inside their own organisation).
            Readers::Only(allowed) => {
                organisations.iter().any(|o| allowed.iter().any(|a| lien_protocol::trust::org_within(o, a)))
            }
        }
    }
}

impl std::fmt::Display for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Readers::Anyone => f.write_str("anyone"),
            Readers::Only(set) if set.is_empty() => f.write_str("nobody"),
            Readers::Only(set) => {
                let names: Vec<&str> = set.iter().map(String::as_str).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

impl Serialize for Readers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Readers::Anyone => s.serialize_none(),
            Readers::Only(set) => s.collect_seq(set),
        }
    }
}

impl<'de> Deserialize<'de> for Readers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<Vec<String>>::deserialize(d)? {
            None => Readers::Anyone,
            Some(list) => Readers::Only(list.into_iter().collect()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Readers {
        Readers::Only(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn sub_units_read_what_their_organisation_may() {
        let moh = only(&["Bo Y te"]);
        assert!(moh.allows(&["Bo Y te/Cuc CNTT".into()]));
        assert!(!moh.allows(&["Bo Y tea".into()]), "a name that merely starts the same is another organisation");
        assert!(!only(&["Bo Y te/Cuc CNTT"]).allows(&["Bo Y te".into()]), "a parent does not read a unit's data");
    }

    #[test]
    fn readers_only_narrow() {
        let x = only(&["X"]);
        assert_eq!(Readers::Anyone.narrowed(&Readers::Anyone), Readers::Anyone);
        assert_eq!(Readers::Anyone.narrowed(&x), x, "public then restricted: restricted");
        assert_eq!(x.narrowed(&Readers::Anyone), x, "restricted then public: still restricted");
        assert_eq!(only(&["X", "Y"]).narrowed(&only(&["Y", "Z"])), only(&["Y"]));
        let nobody = x.narrowed(&only(&["Y"]));
        assert_eq!(nobody, only(&[]), "no organisation in common: nobody");
        assert!(!nobody.allows(&["X".into()]) && !nobody.allows(&["Y".into()]) && !nobody.allows(&[]));
        assert_eq!(nobody.narrowed(&Readers::Anyone), nobody, "nobody stays nobody");
        assert!(Readers::Anyone.allows(&[]));
        assert!(x.allows(&["W".into(), "X".into()]) && !x.allows(&["W".into()]) && !x.allows(&[]));
        assert_eq!(Readers::from_metadata(&[]), Readers::Anyone);
        assert_eq!(Readers::from_metadata(&["X".into(), "X".into()]), x);
        assert_eq!(nobody.to_string(), "nobody");
        assert_eq!(only(&["B", "A"]).to_string(), "A, B");
    }
}
