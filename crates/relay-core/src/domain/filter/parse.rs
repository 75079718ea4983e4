//! Parsing a filter's JSON into the typed tree, with the path of a bad part in each error.

use super::*;

pub(super) fn whole(message: String) -> FilterError {
    FilterError {
        path: String::new(),
        message,
    }
}

/// Where the parser is in the filter, for errors.
#[derive(Default)]
pub(super) struct Path(String);

impl Path {
    fn enter<T>(&mut self, key: &str, f: impl FnOnce(&mut Path) -> T) -> T {
        let len = self.0.len();
        if !self.0.is_empty() {
            self.0.push('.');
        }
        self.0.push_str(key);
        let out = f(self);
        self.0.truncate(len);
        out
    }

    fn index<T>(&mut self, i: usize, f: impl FnOnce(&mut Path) -> T) -> T {
        let len = self.0.len();
        let _ = write!(self.0, "[{i}]");
        let out = f(self);
        self.0.truncate(len);
        out
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        FilterError {
            path: self.0.clone(),
            message: message.into(),
        }
    }
}

pub(super) fn check_depth(value: &Value, path: &mut Path, depth: usize) -> Result<(), FilterError> {
    let nested = matches!(value, Value::Object(_) | Value::Array(_));
    if nested && depth > MAX_FILTER_DEPTH {
        return Err(path.error(format!(
            "nested too deeply (at most {MAX_FILTER_DEPTH} levels of objects and arrays)"
        )));
    }
    match value {
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| path.enter(k, |p| check_depth(v, p, depth + 1))),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| path.index(i, |p| check_depth(v, p, depth + 1))),
        _ => Ok(()),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One node for an object's entries: the single one, or all of them.
fn all(mut nodes: Vec<Node>) -> Node {
    if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::All(nodes)
    }
}

fn non_empty_object<'v>(
    value: &'v Value,
    path: &Path,
    what: &str,
) -> Result<&'v Map<String, Value>, FilterError> {
    match value {
        Value::Object(map) if !map.is_empty() => Ok(map),
        Value::Object(_) => Err(path.error(format!("expected {what}, found an empty object"))),
        other => Err(path.error(format!("expected {what}, found {}", kind(other)))),
    }
}

/// A list of sub-filters for `$and` / `$or`.
fn parse_list(
    value: &Value,
    path: &mut Path,
    mut each: impl FnMut(&Value, &mut Path) -> Result<Node, FilterError>,
) -> Result<Vec<Node>, FilterError> {
    match value {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| path.index(i, |p| each(item, p)))
            .collect(),
        Value::Array(_) => Err(path.error("expected a non-empty array of conditions")),
        other => Err(path.error(format!(
            "expected an array of conditions, found {}",
            kind(other)
        ))),
    }
}

/// The filter's top: `body`, `headers`, and `$and` / `$or` / `$not` of such objects.
pub(super) fn parse_root(
    value: &Value,
    path: &mut Path,
    reads_body: &mut bool,
) -> Result<Node, FilterError> {
    let map = non_empty_object(value, path, "an object with body and/or headers")?;
    let mut nodes = Vec::with_capacity(map.len());
    for (key, item) in map {
        let node = path.enter(key, |p| match key.as_str() {
            BODY => {
                *reads_body = true;
                Ok(Node::Field(BODY.into(), Box::new(parse_pattern(item, p)?)))
            }
            HEADERS => Ok(Node::Field(
                HEADERS.into(),
                Box::new(parse_headers(item, p)?),
            )),
            "$and" => parse_list(item, p, |v, p| parse_root(v, p, reads_body)).map(Node::And),
            "$or" => parse_list(item, p, |v, p| parse_root(v, p, reads_body)).map(Node::Or),
            "$not" => Ok(Node::Not(Box::new(parse_root(item, p, reads_body)?))),
            _ => Err(p.error("expected body, headers, $and, $or or $not")),
        })?;
        nodes.push(node);
    }
    Ok(all(nodes))
}

/// Under `headers`: header names (matched case-insensitively), and `$and` / `$or` / `$not`.
fn parse_headers(value: &Value, path: &mut Path) -> Result<Node, FilterError> {
    let map = non_empty_object(value, path, "an object of header names")?;
    let mut nodes = Vec::with_capacity(map.len());
    for (key, item) in map {
        let node = path.enter(key, |p| match key.as_str() {
            "$and" => parse_list(item, p, parse_headers).map(Node::And),
            "$or" => parse_list(item, p, parse_headers).map(Node::Or),
            "$not" => Ok(Node::Not(Box::new(parse_headers(item, p)?))),
            name if name.starts_with('$') => {
                Err(p.error("expected a header name, $and, $or or $not"))
            }
            name => Ok(Node::Field(
                name.to_ascii_lowercase(),
                Box::new(parse_pattern(item, p)?),
            )),
        })?;
        nodes.push(node);
    }
    Ok(all(nodes))
}

/// A condition on one value: an object of fields and operators, or a value it must equal.
fn parse_pattern(value: &Value, path: &mut Path) -> Result<Node, FilterError> {
    let Value::Object(_) = value else {
        return Ok(Node::Eq(value.clone()));
    };
    let map = non_empty_object(value, path, "fields or operators")?;
    let mut nodes = Vec::with_capacity(map.len());
    for (key, item) in map {
        let node = path.enter(key, |p| {
            if key.starts_with('$') {
                parse_operator(key, item, p)
            } else {
                Ok(Node::Field(key.clone(), Box::new(parse_pattern(item, p)?)))
            }
        })?;
        nodes.push(node);
    }
    Ok(all(nodes))
}

fn parse_operator(key: &str, arg: &Value, path: &mut Path) -> Result<Node, FilterError> {
    let wrong = |expected: &str| path.error(format!("expected {expected}, found {}", kind(arg)));
    Ok(match key {
        "$eq" => Node::Eq(arg.clone()),
        "$neq" => Node::Neq(arg.clone()),
        "$in" | "$nin" => {
            let Value::Array(list) = arg else {
                return Err(wrong("an array of values"));
            };
            if key == "$in" {
                Node::In(list.clone())
            } else {
                Node::Nin(list.clone())
            }
        }
        "$gt" | "$gte" | "$lt" | "$lte" => {
            if !matches!(arg, Value::Number(_) | Value::String(_)) {
                return Err(wrong("a number or a string"));
            }
            let cmp = match key {
                "$gt" => Cmp::Gt,
                "$gte" => Cmp::Gte,
                "$lt" => Cmp::Lt,
                _ => Cmp::Lte,
            };
            Node::Compare(cmp, arg.clone())
        }
        "$startsWith" | "$endsWith" => {
            let Value::String(text) = arg else {
                return Err(wrong("a string"));
            };
            if key == "$startsWith" {
                Node::StartsWith(text.clone())
            } else {
                Node::EndsWith(text.clone())
            }
        }
        "$exist" => match arg {
            Value::Bool(want) => Node::Exist(*want),
            _ => return Err(wrong("true or false")),
        },
        "$and" => Node::And(parse_list(arg, path, parse_pattern)?),
        "$or" => Node::Or(parse_list(arg, path, parse_pattern)?),
        "$not" => Node::Not(Box::new(parse_pattern(arg, path)?)),
        _ => return Err(path.error(format!("unknown operator; use one of {OPERATORS}"))),
    })
}
