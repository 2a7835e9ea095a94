//! A strict, ordered reader over the children of a TTLV Structure, for the typed
//! decoders of [`crate::message`] and [`crate::attribute`]. Fields must appear in the
//! order the specification gives; a field out of order, repeated where it may not be,
//! or unknown to the structure is an error, and every error carries the tag path.

use zeroize::Zeroizing;

use crate::message::{MessageError, MessageErrorKind};
use crate::tag::Tag;
use crate::ttlv::{Item, ItemType, TagPath, Value};

/// Reads the children of one Structure in order.
pub(crate) struct Reader<'a> {
    items: &'a [Item],
    pos: usize,
    path: Vec<Tag>,
}

/// An error at `path` (a structure) extended by `tag` (the offending field), if any.
pub(crate) fn error_at(path: &[Tag], tag: Option<Tag>, kind: MessageErrorKind) -> MessageError {
    let mut p = path.to_vec();
    p.extend(tag);
    MessageError {
        path: TagPath(p),
        kind,
    }
}

fn wrong_type(path: &[Tag], item: &Item, expected: ItemType) -> MessageError {
    error_at(
        path,
        Some(item.tag),
        MessageErrorKind::WrongType {
            tag: item.tag,
            expected,
            found: item.item_type(),
        },
    )
}

/// The item as text, checking its type; rejects NUL characters (a Text String whose
/// length was moved into its zero padding otherwise decodes as well-formed TTLV).
pub(crate) fn text_of(path: &[Tag], item: &Item) -> Result<String, MessageError> {
    match &item.value {
        Value::TextString(s) if s.contains('\0') => Err(error_at(
            path,
            Some(item.tag),
            MessageErrorKind::InvalidValue {
                tag: item.tag,
                reason: "text contains a NUL character".into(),
            },
        )),
        Value::TextString(s) => Ok(s.clone()),
        _ => Err(wrong_type(path, item, ItemType::TextString)),
    }
}

pub(crate) fn enum_of(path: &[Tag], item: &Item) -> Result<u32, MessageError> {
    item.as_enumeration()
        .ok_or_else(|| wrong_type(path, item, ItemType::Enumeration))
}

pub(crate) fn int_of(path: &[Tag], item: &Item) -> Result<i32, MessageError> {
    item.as_integer()
        .ok_or_else(|| wrong_type(path, item, ItemType::Integer))
}

pub(crate) fn date_of(path: &[Tag], item: &Item) -> Result<i64, MessageError> {
    item.as_date_time()
        .ok_or_else(|| wrong_type(path, item, ItemType::DateTime))
}

pub(crate) fn bool_of(path: &[Tag], item: &Item) -> Result<bool, MessageError> {
    item.as_bool()
        .ok_or_else(|| wrong_type(path, item, ItemType::Boolean))
}

pub(crate) fn bytes_of(path: &[Tag], item: &Item) -> Result<Vec<u8>, MessageError> {
    item.as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| wrong_type(path, item, ItemType::ByteString))
}

impl<'a> Reader<'a> {
    /// A reader over a top-level item, which must be a Structure tagged `expected`.
    pub(crate) fn top(item: &'a Item, expected: Tag) -> Result<Reader<'a>, MessageError> {
        if item.tag != expected {
            return Err(error_at(
                &[],
                Some(item.tag),
                MessageErrorKind::WrongTag {
                    expected,
                    found: item.tag,
                },
            ));
        }
        Reader::open_at(&[], item)
    }

    /// A reader over `item` (which must be a Structure) found under `path`.
    pub(crate) fn open_at(path: &[Tag], item: &'a Item) -> Result<Reader<'a>, MessageError> {
        match &item.value {
            Value::Structure(items) => {
                let mut p = path.to_vec();
                p.push(item.tag);
                Ok(Reader {
                    items,
                    pos: 0,
                    path: p,
                })
            }
            _ => Err(wrong_type(path, item, ItemType::Structure)),
        }
    }

    /// A reader over a child structure of this one.
    pub(crate) fn open(&self, item: &'a Item) -> Result<Reader<'a>, MessageError> {
        Reader::open_at(&self.path, item)
    }

    /// The tag path of this structure.
    pub(crate) fn path(&self) -> &[Tag] {
        &self.path
    }

    /// An error about this structure, or about its field `tag`.
    pub(crate) fn error(&self, tag: Option<Tag>, kind: MessageErrorKind) -> MessageError {
        error_at(&self.path, tag, kind)
    }

    /// The next unread child.
    pub(crate) fn peek(&self) -> Option<&'a Item> {
        self.items.get(self.pos)
    }

    /// The next child, if it has `tag`.
    pub(crate) fn next_if(&mut self, tag: Tag) -> Option<&'a Item> {
        let item = self.items.get(self.pos).filter(|i| i.tag == tag)?;
        self.pos += 1;
        Some(item)
    }

    /// The next child, whatever its tag.
    pub(crate) fn next_any(&mut self) -> Option<&'a Item> {
        let item = self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }

    /// The next child, which must have `tag`.
    pub(crate) fn require(&mut self, tag: Tag) -> Result<&'a Item, MessageError> {
        self.next_if(tag)
            .ok_or_else(|| self.error(None, MessageErrorKind::Missing(tag)))
    }

    /// Ends reading: any child left over is unexpected here.
    pub(crate) fn finish(self) -> Result<(), MessageError> {
        match self.peek() {
            None => Ok(()),
            Some(item) => Err(self.error(Some(item.tag), MessageErrorKind::Unexpected(item.tag))),
        }
    }

    pub(crate) fn opt_text(&mut self, tag: Tag) -> Result<Option<String>, MessageError> {
        self.next_if(tag)
            .map(|i| text_of(&self.path, i))
            .transpose()
    }
    pub(crate) fn req_text(&mut self, tag: Tag) -> Result<String, MessageError> {
        let item = self.require(tag)?;
        text_of(&self.path, item)
    }
    pub(crate) fn many_text(&mut self, tag: Tag) -> Result<Vec<String>, MessageError> {
        let mut out = Vec::new();
        while let Some(v) = self.opt_text(tag)? {
            out.push(v);
        }
        Ok(out)
    }
    pub(crate) fn opt_enum(&mut self, tag: Tag) -> Result<Option<u32>, MessageError> {
        self.next_if(tag)
            .map(|i| enum_of(&self.path, i))
            .transpose()
    }
    pub(crate) fn req_enum(&mut self, tag: Tag) -> Result<u32, MessageError> {
        let item = self.require(tag)?;
        enum_of(&self.path, item)
    }
    pub(crate) fn many_enum(&mut self, tag: Tag) -> Result<Vec<u32>, MessageError> {
        let mut out = Vec::new();
        while let Some(v) = self.opt_enum(tag)? {
            out.push(v);
        }
        Ok(out)
    }
    pub(crate) fn opt_int(&mut self, tag: Tag) -> Result<Option<i32>, MessageError> {
        self.next_if(tag).map(|i| int_of(&self.path, i)).transpose()
    }
    pub(crate) fn req_int(&mut self, tag: Tag) -> Result<i32, MessageError> {
        let item = self.require(tag)?;
        int_of(&self.path, item)
    }
    pub(crate) fn opt_date(&mut self, tag: Tag) -> Result<Option<i64>, MessageError> {
        self.next_if(tag)
            .map(|i| date_of(&self.path, i))
            .transpose()
    }
    pub(crate) fn req_date(&mut self, tag: Tag) -> Result<i64, MessageError> {
        let item = self.require(tag)?;
        date_of(&self.path, item)
    }
    pub(crate) fn opt_bool(&mut self, tag: Tag) -> Result<Option<bool>, MessageError> {
        self.next_if(tag)
            .map(|i| bool_of(&self.path, i))
            .transpose()
    }
    pub(crate) fn opt_bytes(&mut self, tag: Tag) -> Result<Option<Vec<u8>>, MessageError> {
        self.next_if(tag)
            .map(|i| bytes_of(&self.path, i))
            .transpose()
    }
    pub(crate) fn opt_secret(
        &mut self,
        tag: Tag,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, MessageError> {
        Ok(self.opt_bytes(tag)?.map(Zeroizing::new))
    }
    pub(crate) fn opt_interval(&mut self, tag: Tag) -> Result<Option<u32>, MessageError> {
        self.next_if(tag)
            .map(|i| {
                i.as_interval()
                    .ok_or_else(|| wrong_type(&self.path, i, ItemType::Interval))
            })
            .transpose()
    }
    /// The next child if it has `tag`, as a reader (it must be a Structure).
    pub(crate) fn opt_struct(&mut self, tag: Tag) -> Result<Option<Reader<'a>>, MessageError> {
        match self.next_if(tag) {
            Some(item) => Ok(Some(self.open(item)?)),
            None => Ok(None),
        }
    }
    /// The next child if it has `tag`, as an item (it must be a Structure).
    pub(crate) fn opt_raw_struct(&mut self, tag: Tag) -> Result<Option<&'a Item>, MessageError> {
        match self.next_if(tag) {
            Some(item) => {
                self.open(item)?;
                Ok(Some(item))
            }
            None => Ok(None),
        }
    }
    pub(crate) fn req_struct(&mut self, tag: Tag) -> Result<Reader<'a>, MessageError> {
        let item = self.require(tag)?;
        self.open(item)
    }
}
