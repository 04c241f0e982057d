//! Token metadata over DAS: the `getAssetBatch` JSON-RPC call and the value it writes.
//!
//! Facts carried over from the reference (hyperstack-interpreter 0.6.9, `resolvers.rs`): the
//! request is `{"jsonrpc":"2.0","id":"1","method":"getAssetBatch","params":{"ids":[mints],
//! "options":{"showFungible":true}}}`; the answer's `result` is an array of assets (or an object
//! with `items`), null entries skipped; an `error` member fails the whole call. Each asset becomes
//! `{"mint", "name", "symbol", "decimals", "logo_uri"}` (missing parts null), keyed by its `id`.
//! A mint the answer does not contain gets no value.

use serde_json::{json, Map, Value as Json};

use super::http::ResolverError;

/// The JSON-RPC body for one batch of mints.
pub fn request_body(mints: &[&str]) -> Json {
    json!({
        "jsonrpc": "2.0",
        "id": "1",
        "method": "getAssetBatch",
        "params": {"ids": mints, "options": {"showFungible": true}},
    })
}

/// The `(mint, metadata)` pairs of a `getAssetBatch` answer.
pub fn parse_response(url: &str, answer: &Json) -> Result<Vec<(String, Json)>, ResolverError> {
    if let Some(e) = answer.get("error").filter(|e| !e.is_null()) {
        return Err(ResolverError::Rpc {
            url: url.to_string(),
            message: e.to_string(),
        });
    }
    let assets = match answer.get("result") {
        Some(Json::Array(items)) => items,
        Some(Json::Object(o)) => match o.get("items") {
            Some(Json::Array(items)) => items,
            _ => return Err(missing_result(url)),
        },
        _ => return Err(missing_result(url)),
    };
    Ok(assets.iter().filter_map(token_metadata).collect())
}

fn missing_result(url: &str) -> ResolverError {
    ResolverError::BadResponse {
        url: url.to_string(),
        message: "JSON-RPC answer without a result".into(),
    }
}

/// One asset as the value written to the entity, or `None` without a string `id`.
pub fn token_metadata(asset: &Json) -> Option<(String, Json)> {
    let mint = asset.get("id")?.as_str()?.to_string();
    let text = |ptr: &str| {
        asset
            .pointer(ptr)
            .and_then(Json::as_str)
            .map(|s| Json::String(s.to_string()))
    };
    let decimals = asset
        .get("token_info")
        .or_else(|| asset.pointer("/content/token_info"))
        .and_then(|i| i.get("decimals"))
        .and_then(Json::as_u64);
    let mut m = Map::new();
    m.insert("mint".into(), Json::String(mint.clone()));
    m.insert(
        "name".into(),
        text("/content/metadata/name").unwrap_or(Json::Null),
    );
    m.insert(
        "symbol".into(),
        text("/content/metadata/symbol").unwrap_or(Json::Null),
    );
    m.insert(
        "decimals".into(),
        decimals.map(Json::from).unwrap_or(Json::Null),
    );
    m.insert(
        "logo_uri".into(),
        text("/content/links/image")
            .or_else(|| text("/content/links/image_uri"))
            .unwrap_or(Json::Null),
    );
    Some((mint, Json::Object(m)))
}

/// The mint of a token request's input: a non-empty string, or an object's `mint`.
pub fn mint_of(input: &Json) -> Option<&str> {
    match input {
        Json::String(s) => Some(s.as_str()),
        Json::Object(o) => o.get("mint").and_then(Json::as_str),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asset_becomes_the_references_token_metadata() {
        let asset = json!({"id": "M", "content": {"metadata": {"name": "Ore", "symbol": "ORE"},
            "links": {"image": "https://img"}}, "token_info": {"decimals": 11}});
        assert_eq!(
            token_metadata(&asset),
            Some((
                "M".into(),
                json!({"mint": "M", "name": "Ore", "symbol": "ORE", "decimals": 11, "logo_uri": "https://img"})
            ))
        );
        let bare = json!({"id": "N", "content": {"token_info": {"decimals": 6}, "links": {"image_uri": "u"}}});
        assert_eq!(
            token_metadata(&bare).unwrap().1,
            json!({"mint": "N", "name": null, "symbol": null, "decimals": 6, "logo_uri": "u"})
        );
        assert_eq!(token_metadata(&json!({"content": {}})), None);
    }

    #[test]
    fn answers_with_items_errors_or_nothing() {
        let a = json!({"result": {"items": [{"id": "A"}, null]}});
        assert_eq!(parse_response("u", &a).unwrap().len(), 1);
        let e = json!({"error": {"code": -32000, "message": "boom"}});
        assert_eq!(parse_response("u", &e).unwrap_err().kind(), "rpc");
        assert_eq!(
            parse_response("u", &json!({"id": "1"})).unwrap_err().kind(),
            "bad_response"
        );
    }

    #[test]
    fn mint_comes_from_a_string_or_an_objects_mint() {
        assert_eq!(mint_of(&json!("M")), Some("M"));
        assert_eq!(mint_of(&json!({"mint": "M"})), Some("M"));
        assert_eq!(mint_of(&json!("")), None);
        assert_eq!(mint_of(&json!(5)), None);
        assert_eq!(
            request_body(&["A", "B"])["params"],
            json!({"ids": ["A", "B"], "options": {"showFungible": true}})
        );
    }
}
