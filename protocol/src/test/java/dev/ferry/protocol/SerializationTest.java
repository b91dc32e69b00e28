package dev.ferry.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Constructor;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.apache.pekko.serialization.Serializers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Every message of every protocol, built from its record components, goes through the serializer
 * the cluster uses (Jackson CBOR) and comes back equal. A new message is covered without touching
 * this test: it iterates the sealed interfaces' permitted subclasses.
 */
class SerializationTest {
  private static final ActorTestKit testKit = ActorTestKit.create();

  @AfterAll
  static void stop() {
    testKit.shutdownTestKit();
  }

  private static final List<Class<?>> PROTOCOLS =
      List.of(
          AgentProtocol.Command.class,
          DestinationProtocol.Command.class,
          DestinationProtocol.Reply.class,
          MigrationEvent.class,
          SchedulerProtocol.Command.class);

  @Test
  void everyMessageRoundTripsThroughJacksonCbor() throws Exception {
    Serialization serialization = SerializationExtension.get(testKit.system().classicSystem());
    int checked = 0;
    for (Class<?> protocol : PROTOCOLS) {
      assertTrue(protocol.isSealed(), protocol + " is sealed");
      for (Class<?> message : protocol.getPermittedSubclasses()) {
        Object original = sample(message);
        Serializer serializer = serialization.findSerializerFor(original);
        assertEquals(
            "org.apache.pekko.serialization.jackson.JacksonCborSerializer",
            serializer.getClass().getName(),
            message + " must be bound to jackson-cbor");
        byte[] bytes = serialization.serialize(original).get();
        String manifest = Serializers.manifestFor(serializer, original);
        Object back = serialization.deserialize(bytes, serializer.identifier(), manifest).get();
        assertEquals(original, back, message.getName());
        checked++;
      }
    }
    assertTrue(checked >= 20, "only " + checked + " messages found");
  }

  /** An instance with every component filled with a non-default value. */
  private Object sample(Class<?> type) throws Exception {
    RecordComponent[] components = type.getRecordComponents();
    Class<?>[] types = new Class<?>[components.length];
    Object[] values = new Object[components.length];
    for (int i = 0; i < components.length; i++) {
      types[i] = components[i].getType();
      values[i] = value(components[i].getGenericType(), components[i].getName());
    }
    Constructor<?> c = type.getDeclaredConstructor(types);
    return c.newInstance(values);
  }

  private Object value(Type generic, String name) throws Exception {
    Class<?> raw =
        generic instanceof ParameterizedType p ? (Class<?>) p.getRawType() : (Class<?>) generic;
    if (raw == String.class) {
      return name + "-value";
    }
    if (raw == long.class) {
      return 42L;
    }
    if (raw == int.class) {
      return 7;
    }
    if (raw == double.class) {
      return 0.25;
    }
    if (raw == boolean.class) {
      return true;
    }
    if (raw.isEnum()) {
      Object[] constants = raw.getEnumConstants();
      return constants[constants.length - 1];
    }
    if (raw == List.class) {
      Type element = ((ParameterizedType) generic).getActualTypeArguments()[0];
      List<Object> list = new ArrayList<>();
      list.add(value(element, name));
      return list;
    }
    if (raw == ActorRef.class) {
      return testKit.createTestProbe().ref();
    }
    if (raw.isRecord()) {
      return sample(raw);
    }
    throw new IllegalArgumentException("no sample for " + generic + " (" + name + ")");
  }
}
