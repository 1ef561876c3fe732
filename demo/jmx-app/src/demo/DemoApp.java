package demo;

import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.jolokia.http.AgentServlet;

/**
 * A small JVM application with MBeans of its own, exposed over HTTP by Jolokia's AgentServlet in an
 * embedded Jetty, the way many Java services expose JMX to sidecars.
 *
 * <p>Settings (flag, else environment variable, else default): --port / JOLOKIA_PORT (8778),
 * --host / JOLOKIA_HOST (0.0.0.0), --synthetic-beans / SYNTHETIC_BEANS (0) and
 * --synthetic-attributes / SYNTHETIC_ATTRIBUTES (10) for the benchmark's many attributes, and
 * --synthetic-moving / SYNTHETIC_MOVING (false) to make their values change on every read.
 */
public final class DemoApp {
    private DemoApp() {}

    private static String setting(String[] args, String flag, String env, String fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(flag)) {
                return args[i + 1];
            }
        }
        String fromEnv = System.getenv(env);
        return fromEnv == null || fromEnv.isEmpty() ? fallback : fromEnv;
    }

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(setting(args, "--port", "JOLOKIA_PORT", "8778"));
        String host = setting(args, "--host", "JOLOKIA_HOST", "0.0.0.0");
        int beans = Integer.parseInt(setting(args, "--synthetic-beans", "SYNTHETIC_BEANS", "0"));
        int attrs = Integer.parseInt(setting(args, "--synthetic-attributes", "SYNTHETIC_ATTRIBUTES", "10"));
        boolean moving = Boolean.parseBoolean(setting(args, "--synthetic-moving", "SYNTHETIC_MOVING", "false"));

        MBeanServer mbs = ManagementFactory.getPlatformMBeanServer();
        // Property order is deliberate: jmx_exporter names follow registration order, not sorted.
        mbs.registerMBean(new Requests(200L), new ObjectName("demo.app:type=Requests,name=api,zone=eu"));
        mbs.registerMBean(new Requests(1_234_567_890_123L), new ObjectName("demo.app:type=Requests,name=admin,zone=us"));
        mbs.registerMBean(new Cache(), new ObjectName("demo.app:type=Cache,name=users"));
        mbs.registerMBean(new Regions(), new ObjectName("demo.app:type=Regions"));
        mbs.registerMBean(new Requests(5L), new ObjectName("demo.app:name=\"quoted,name\",type=Requests"));
        for (int i = 0; i < beans; i++) {
            mbs.registerMBean(new Synthetic(i, attrs, moving),
                    new ObjectName(String.format("demo.bench:type=Synthetic,name=bean%05d", i)));
        }

        Server server = new Server(new InetSocketAddress(host, port));
        ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
        context.setContextPath("/");
        ServletHolder jolokia = new ServletHolder(new AgentServlet());
        // Errors go back as JSON with a status, not as stack traces in every response.
        jolokia.setInitParameter("includeStackTrace", "false");
        jolokia.setInitParameter("discoveryEnabled", "false");
        context.addServlet(jolokia, "/jolokia/*");
        server.setHandler(context);
        server.setStopAtShutdown(true);
        server.start();
        int bound = ((org.eclipse.jetty.server.ServerConnector) server.getConnectors()[0]).getLocalPort();
        // The test fixture and the container healthcheck wait for this line.
        System.out.println("jolokia ready on " + host + ":" + bound + " path /jolokia");
        System.out.flush();
        server.join();
    }
}
