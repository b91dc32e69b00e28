package dev.ferry.api;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.exc.InvalidFormatException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.exc.ValueInstantiationException;
import dev.ferry.node.validation.Names;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;

/**
 * Why a request body could not be read, in the API's own words: the field (as a JSON path), what it
 * must be, and at most a few dozen characters of what was sent. Jackson's own messages name Java
 * types and echo whole values; they never reach a caller.
 */
final class JsonErrors {
  private JsonErrors() {}

  private static final java.util.regex.Pattern DUPLICATE =
      java.util.regex.Pattern.compile("^Duplicate field '(.*)'");

  static String describe(JsonProcessingException e) {
    if (e instanceof UnrecognizedPropertyException u) {
      return "unknown field " + quoted(u.getPropertyName()) + where(parent(u));
    }
    if (e instanceof InvalidFormatException f) {
      Class<?> target = f.getTargetType();
      String sent = f.getValue() == null ? "" : " (" + quoted(String.valueOf(f.getValue())) + ")";
      return at(f) + " must be " + expected(target) + sent;
    }
    if (e instanceof ValueInstantiationException v && v.getCause() != null) {
      return at(v) + ": " + Names.printable(String.valueOf(v.getCause().getMessage()));
    }
    if (e instanceof MismatchedInputException m) {
      if (m.getPath().isEmpty()) {
        return "the body must be a JSON object";
      }
      return at(m) + " must be " + expected(m.getTargetType());
    }
    if (e instanceof JsonParseException p) {
      String original = String.valueOf(p.getOriginalMessage());
      java.util.regex.Matcher dup = DUPLICATE.matcher(original);
      if (dup.find()) {
        return "field " + quoted(dup.group(1)) + " appears twice" + location(p);
      }
      return "not valid JSON" + location(p);
    }
    if (e instanceof JsonMappingException m && !m.getPath().isEmpty()) {
      return at(m) + " does not match this resource's schema";
    }
    return "the body does not match this resource's schema";
  }

  /** What a value of this type must look like on the wire. */
  static String expected(Class<?> type) {
    if (type == null) {
      return "of the documented type";
    }
    if (type.isEnum()) {
      return "one of " + String.join(", ", enumNames(type));
    }
    if (type == String.class) {
      return "a string";
    }
    if (type == int.class
        || type == Integer.class
        || type == long.class
        || type == Long.class
        || type == short.class
        || type == Short.class) {
      return "an integer";
    }
    if (type == double.class
        || type == Double.class
        || type == float.class
        || type == Float.class
        || Number.class.isAssignableFrom(type)) {
      return "a number";
    }
    if (type == boolean.class || type == Boolean.class) {
      return "true or false";
    }
    if (type.isArray() || Collection.class.isAssignableFrom(type)) {
      return "an array";
    }
    if (Map.class.isAssignableFrom(type) || type.isRecord()) {
      return "an object";
    }
    return "of the documented type";
  }

  /** The names an enum is written with: its {@code @JsonProperty} names. */
  static List<String> enumNames(Class<?> type) {
    List<String> names = new ArrayList<>();
    for (Object constant : type.getEnumConstants()) {
      String name = ((Enum<?>) constant).name();
      try {
        JsonProperty p = type.getField(name).getAnnotation(JsonProperty.class);
        names.add(p != null ? p.value() : name);
      } catch (NoSuchFieldException ex) {
        names.add(name);
      }
    }
    return names;
  }

  private static String at(JsonMappingException e) {
    String path = path(e.getPath());
    return path.isEmpty() ? "the body" : "field " + path;
  }

  private static List<JsonMappingException.Reference> parent(JsonMappingException e) {
    List<JsonMappingException.Reference> p = e.getPath();
    return p.isEmpty() ? p : p.subList(0, p.size() - 1);
  }

  private static String where(List<JsonMappingException.Reference> parent) {
    String p = path(parent);
    return p.isEmpty() ? "" : " in " + p;
  }

  private static String path(List<JsonMappingException.Reference> refs) {
    StringBuilder sb = new StringBuilder();
    for (JsonMappingException.Reference r : refs) {
      if (r.getFieldName() != null) {
        if (sb.length() > 0) {
          sb.append('.');
        }
        sb.append(Names.printable(r.getFieldName()));
      } else if (r.getIndex() >= 0) {
        sb.append('[').append(r.getIndex()).append(']');
      }
    }
    return sb.toString();
  }

  private static String location(JsonParseException p) {
    return p.getLocation() == null
        ? ""
        : " (line "
            + p.getLocation().getLineNr()
            + ", column "
            + p.getLocation().getColumnNr()
            + ")";
  }

  private static String quoted(String s) {
    return "\"" + Names.printable(s) + "\"";
  }
}
