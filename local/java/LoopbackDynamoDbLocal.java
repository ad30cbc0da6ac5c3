import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * Starts DynamoDB Local exactly as its own main class (ServerRunner) does, with the same
 * command-line options, but listening on 127.0.0.1 only.
 *
 * DynamoDB Local has no listen-address option: DynamoDBProxyServer builds Jetty with
 * {@code new Server(port)}, whose single ServerConnector has no host and so binds every
 * interface. This launcher lets ServerRunner build the server, then sets that connector's host
 * to 127.0.0.1 before anything is bound. It fails closed: if the jar's internals change so that
 * the connector cannot be found or adjusted, it exits with an error instead of starting a server
 * that listens on every interface.
 *
 * Run with Java's single-file source launcher (needs a JDK, for the jdk.compiler module), from
 * the DynamoDB Local folder: {@code java -Djava.library.path=./DynamoDBLocal_lib -cp
 * DynamoDBLocal.jar LoopbackDynamoDbLocal.java -inMemory -sharedDb -disableTelemetry -port N}.
 * The jar's manifest Class-Path brings in DynamoDBLocal_lib/*.
 */
public class LoopbackDynamoDbLocal {
  static final String HOST = "127.0.0.1";

  public static void main(String[] args) throws Exception {
    // Same argument handling as ServerRunner.main: -help prints the usage and stops.
    if (!new CommandLineInput(args).init()) return;

    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Server server = jettyServer(proxy);
    Connector[] connectors = server.getConnectors();
    if (connectors.length == 0) fail("DynamoDB Local's Jetty server has no connector");
    for (Connector connector : connectors) {
      if (!(connector instanceof ServerConnector)) fail("unexpected Jetty connector " + connector.getClass().getName());
      ((ServerConnector) connector).setHost(HOST);
    }

    proxy.start(); // as ServerRunner.main; prints "Could not start server on port N: ..." on a bind error
    for (Connector connector : server.getConnectors()) {
      String host = ((ServerConnector) connector).getHost();
      if (!HOST.equals(host)) {
        proxy.stop();
        fail("connector bound to " + host + " instead of " + HOST);
      }
    }
  }

  private static Server jettyServer(DynamoDBProxyServer proxy) {
    try {
      Field field = DynamoDBProxyServer.class.getDeclaredField("server");
      field.setAccessible(true);
      Object value = field.get(proxy);
      if (value instanceof Server) return (Server) value;
      fail("DynamoDBProxyServer.server is " + (value == null ? "null" : value.getClass().getName()));
    } catch (ReflectiveOperationException | RuntimeException e) {
      fail("cannot reach DynamoDB Local's Jetty server (" + e + ")");
    }
    return null; // unreachable
  }

  private static void fail(String reason) {
    System.err.println("LoopbackDynamoDbLocal: " + reason + "; refusing to start DynamoDB Local on every interface.");
    System.exit(2);
  }
}
