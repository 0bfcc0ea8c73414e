//! Filter parameters whose value is one of a closed set of words (an incident's status, an
//! alert's disposition): each is stated once, as a [`Choice`], and from that statement the
//! handler reads it ([`read`]) and the OpenAPI document states it as an enum
//! ([`ChoiceParam`]), so the two cannot disagree. Like every filter, an empty value is the
//! same as none, and the document says so (`""` is among the enum's values).

use super::{Problem, bad_request, param};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// A query parameter that takes one of [`Choice::WORDS`].
pub(crate) trait Choice {
    /// The parameter's name.
    const NAME: &'static str;
    /// What a value is, for the refusal: "a status".
    const WHAT: &'static str;
    /// What it filters, for the document: "Only incidents in this status".
    const DESCRIPTION: &'static str;
    const WORDS: &'static [&'static str];
}

/// The value of `C` in `params`, `None` if absent (or empty); a value not among its words is
/// refused with 400 listing them.
pub(super) fn read<C: Choice>(params: &BTreeMap<String, String>) -> Result<Option<&str>, Problem> {
    match param(params, C::NAME) {
        Some(v) if !C::WORDS.contains(&v) => Err(bad_request(&format!(
            "'{v}' is not {}; use one of: {}",
            C::WHAT,
            C::WORDS.join(", ")
        ))),
        v => Ok(v),
    }
}

/// `C` in the OpenAPI document, for a handler's `#[utoipa::path(params(ChoiceParam<C>, ...))]`:
/// an optional query parameter whose schema is the enum of its words.
pub(crate) struct ChoiceParam<C>(PhantomData<C>);

impl<C: Choice> utoipa::IntoParams for ChoiceParam<C> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(C::WORDS.iter().copied().chain([""])));
        vec![
            ParameterBuilder::new()
                .name(C::NAME)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(format!(
                    "{}: {} (empty: any)",
                    C::DESCRIPTION,
                    C::WORDS.join(", ")
                )))
                .schema(Some(schema))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Colour;
    impl Choice for Colour {
        const NAME: &'static str = "colour";
        const WHAT: &'static str = "a colour";
        const DESCRIPTION: &'static str = "Only things of this colour";
        const WORDS: &'static [&'static str] = &["red", "green"];
    }

    #[test]
    fn a_choice_is_read_and_documented_from_its_words() {
        let params = |v: &str| BTreeMap::from([("colour".to_owned(), v.to_owned())]);
        assert_eq!(read::<Colour>(&params("red")).unwrap(), Some("red"));
        assert_eq!(read::<Colour>(&params("")).unwrap(), None);
        assert_eq!(read::<Colour>(&BTreeMap::new()).unwrap(), None);
        let e = read::<Colour>(&params("blue")).unwrap_err();
        assert_eq!(e.title, "'blue' is not a colour; use one of: red, green");

        use utoipa::IntoParams as _;
        let doc = serde_json::to_value(ChoiceParam::<Colour>::into_params(|| None)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!([{
                "name": "colour",
                "in": "query",
                "required": false,
                "description": "Only things of this colour: red, green (empty: any)",
                "schema": { "type": "string", "enum": ["red", "green", ""] }
            }])
        );
    }
}
